/* Helpers shared between the sync primitives (hidden symbols). */
#ifndef CSP_SYNC_INTERNAL_H
#define CSP_SYNC_INTERNAL_H

#include "../internal.h"

#include <csp.h>
#include <stdbool.h>

/* True if m is locked (by anyone). Racy snapshot; cond.c uses it to reject a
 * wait with an unlocked mutex. */
bool csp__mutex_is_locked(csp_mutex_t *m);
/* Locks m, retrying through shutdown (cond's relock must not fail). */
int csp__mutex_lock_nofail(csp_mutex_t *m);

#endif /* CSP_SYNC_INTERNAL_H */
