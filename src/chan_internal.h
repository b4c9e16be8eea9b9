/* Internal hooks between channels and timers (timer_api.c). */
#ifndef CSP_CHAN_INTERNAL_H
#define CSP_CHAN_INTERNAL_H

#include <csp.h>

struct csp_timer;
/* Makes c own t: the channel's last release cancels and frees it. */
void csp__chan_set_timer(csp_chan_t *c, struct csp_timer *t);
/* Discards every buffered value; returns how many there were. */
size_t csp__chan_drain(csp_chan_t *c);
/* Cancels (waiting for a firing in progress) and frees a csp_after timer. */
void csp__timer_chan_free(struct csp_timer *t);

#endif
