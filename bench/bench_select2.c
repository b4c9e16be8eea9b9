/* select2: one receiver selecting over 2 unbuffered int channels, each fed by
 * its own producer task.
 *
 * Producer i sends n/2 ints on channel i; the receiver calls csp_select over
 * the 2 receive cases until it has all of them, and checks the per-channel
 * counts. The result is the wall time from the first spawn to the join divided
 * by the number of items received (n rounded down to a multiple of 2).
 * Go twin: bench/go/select2 (a select statement with 2 cases).
 *
 * Usage: bench_select2 [items]   (default 2,000,000)
 */
#define K 2
#define NAME "select2"
#include "select_body.h"
