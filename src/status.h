/* status.h: setting the thread's last-error message that cg_last_error() returns. */
#ifndef CG_STATUS_H
#define CG_STATUS_H

#include "cartoongan.h"

/* Formats the message (printf-style), stores it for cg_last_error() and returns `s`, so
 * failures read `return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));` */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
cg_status cg_fail(cg_status s, const char *fmt, ...);

#endif
