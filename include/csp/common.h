/* libcsp — common definitions: export macro, error codes, time.
 *
 * Every public function returns 0 or a negative CSP_E* code unless its comment
 * says otherwise. Codes are stable; csp_strerror() and csp_err_name() describe
 * them. Time is monotonic nanoseconds (csp_now()).
 */
#ifndef CSP_COMMON_H
#define CSP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CSP_BUILDING) && defined(__GNUC__)
#  define CSP_EXTERN __attribute__((visibility("default")))
#else
#  define CSP_EXTERN
#endif

/* Error codes (negative; 0 is success):
 *   CSP_ECLOSED    channel closed           CSP_ETIMEDOUT  deadline passed
 *   CSP_ECANCELED  context canceled         CSP_EDEADLINE  context deadline exceeded
 *   CSP_EAGAIN     would block (try/poll)   CSP_EINVAL     bad argument
 *   CSP_ENOMEM     out of memory            CSP_ESHUTDOWN  runtime stopping
 *   CSP_EDEADLOCK  every task asleep        CSP_ESTATE     runtime in the wrong state
 *   CSP_EIO        a read or write failed
 * X-macro: name, value, message. Values are never reused. */
#define CSP_ERRNO_MAP(X)                                                     \
    X(ECLOSED,    -1, "channel closed")                                      \
    X(ETIMEDOUT,  -2, "deadline passed")                                     \
    X(ECANCELED,  -3, "context canceled")                                    \
    X(EDEADLINE,  -4, "context deadline exceeded")                           \
    X(EAGAIN,     -5, "operation would block")                               \
    X(EINVAL,     -6, "invalid argument")                                    \
    X(ENOMEM,     -7, "out of memory")                                       \
    X(ESHUTDOWN,  -8, "runtime shutting down")                               \
    X(EDEADLOCK,  -9, "all tasks are asleep - deadlock")                     \
    X(ESTATE,    -10, "runtime not in the required state")                 \
    X(EIO,       -11, "input/output error")

enum {
#define CSP__ERR_ENUM(name, val, msg) CSP_##name = (val),
    CSP_ERRNO_MAP(CSP__ERR_ENUM)
#undef CSP__ERR_ENUM
    CSP_OK = 0
};

/* Describes an error code ("channel closed"). Never NULL; unknown codes give
 * "unknown error". Non-blocking, thread-safe; the string is static. */
CSP_EXTERN const char *csp_strerror(int err);
/* The code's name ("CSP_ECLOSED"), or "CSP_UNKNOWN". Static string. */
CSP_EXTERN const char *csp_err_name(int err);

/* ---- time ---- */
typedef int64_t csp_time_t;      /* monotonic nanoseconds, see csp_now() */
typedef int64_t csp_duration_t;  /* nanoseconds */

#define CSP_NANOSECOND  ((csp_duration_t)1)
#define CSP_MICROSECOND ((csp_duration_t)1000)
#define CSP_MILLISECOND ((csp_duration_t)1000000)
#define CSP_SECOND      ((csp_duration_t)1000000000)
#define CSP_FOREVER     ((csp_time_t)INT64_MAX)   /* a deadline that never passes */

/* The monotonic clock (CLOCK_MONOTONIC) in nanoseconds. Never blocks; works
 * with or without a running runtime, on any thread. */
CSP_EXTERN csp_time_t csp_now(void);

/* now + d, saturating at CSP_FOREVER (and at 0 for large negative d). */
CSP_EXTERN csp_time_t csp_deadline_after(csp_duration_t d);

#ifdef __cplusplus
}
#endif
#endif /* CSP_COMMON_H */
