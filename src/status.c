/* status.c: status strings and the per-thread last-error message. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

const char *cg_last_error(void) { return last_error; }

cg_status cg_fail(cg_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *cg_status_string(cg_status s) {
    switch (s) {
    case CG_OK: return "ok";
    case CG_ERR_ARG: return "invalid argument";
    case CG_ERR_IO: return "input/output error";
    case CG_ERR_FORMAT: return "bad file format";
    case CG_ERR_WEIGHTS: return "bad weights";
    case CG_ERR_LIMIT: return "over a size limit";
    case CG_ERR_NOMEM: return "out of memory";
    case CG_ERR_CANCELLED: return "cancelled";
    case CG_ERR_DIVERGED: return "training diverged";
    }
    return "unknown status";
}
