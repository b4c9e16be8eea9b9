/* select8: one receiver selecting over 2 unbuffered int channels, each fed by
 * its own producer task.
 *
 * Producer i sends n/8 ints on channel i; the receiver calls csp_select over
 * the 8 receive cases until it has all of them, and checks the per-channel
 * counts. The result is the wall time from the first spawn to the join divided
 * by the number of items received (n rounded down to a multiple of 8).
 * Go twin: bench/go/select8 (a select statement with 8 cases).
 *
 * Usage: bench_select8 [items]   (default 2,000,000)
 */
#define K 8
#define NAME "select8"
#include "select_body.h"
