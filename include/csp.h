/* libcsp — Go's concurrency model for C. The umbrella header. */
#ifndef CSP_H
#define CSP_H

#define CSP_VERSION_MAJOR 0
#define CSP_VERSION_MINOR 1
#define CSP_VERSION_PATCH 0
#define CSP_VERSION_STRING "0.1.0"

#include "csp/common.h"
#include "csp/runtime.h"
#include "csp/ctx.h"
#include "csp/sync.h"
#include "csp/chan.h"
#include "csp/timer.h"
#include "csp/limiter.h"
#include "csp/supervise.h"
#include "csp/pipeline.h"
#include "csp/error.h"
#include "csp/io.h"

#endif /* CSP_H */
