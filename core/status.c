/* core/status.c: status names and messages (from the X-macro in mnemo.h)
 * and the per-thread last-error message. Invariant: mn_errmsg() never
 * returns NULL and is only changed by mn__error / mn_clear_error. */
#include "internal.h"
#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
#define MN__NAME(code, name, msg) name,
    MN_STATUS_LIST(MN__NAME)
#undef MN__NAME
};
static const char *const status_msgs[] = {
#define MN__MSG(code, name, msg) msg,
    MN_STATUS_LIST(MN__MSG)
#undef MN__MSG
};
_Static_assert(MN__ARRAY_LEN(status_names) == MN_STATUS_COUNT, "status table");

static _Thread_local char last_msg[1024];
static _Thread_local mn_status last_code;

const char *mn_status_name(mn_status s)
{
    return (unsigned)s < MN_STATUS_COUNT ? status_names[s] : "unknown";
}

const char *mn_status_message(mn_status s)
{
    return (unsigned)s < MN_STATUS_COUNT ? status_msgs[s] : "unknown status";
}

const char *mn_errmsg(void) { return last_msg[0] ? last_msg : mn_status_message(last_code); }
mn_status mn_last_status(void) { return last_code; }
void mn_clear_error(void) { last_msg[0] = 0; last_code = MN_OK; }

mn_status mn__verror(mn_status code, const char *fmt, va_list ap)
{
    last_code = code;
    if (fmt)
        vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    else
        snprintf(last_msg, sizeof last_msg, "%s", mn_status_message(code));
    return code;
}

mn_status mn__error(mn_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mn__verror(code, fmt, ap);
    va_end(ap);
    return code;
}

mn_status mn_set_error(mn_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mn__verror(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *mn_version(void) { return "0.2.0"; }
