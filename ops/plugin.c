/* ops/plugin.c: loading op plugins. A plugin is a shared object exporting
 * mn_plugin_entry; its ABI major, minor and struct-size fingerprint are
 * checked before anything else, then its init registers namespaced ops
 * into the same registry as the built-ins. Any failure undoes the
 * plugin's registrations and closes the library: the registry is left as
 * it was. Loading is not thread-safe (load plugins before building graphs). */
#include "op.h"
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int mn__op_plugin_of(const mn_op_def *op);
mn_status mn__op_append(const mn_op_def *op, int plugin);
int mn__op_extra_count(void);
void mn__op_truncate(int n);

typedef struct { char *name, *version, *path; void *handle; } plugin;
static plugin *plugins;
static int nplugins;
/* Host-owned copies of plugin records, widened to this header's size. */
static mn_op_def **records;
static int nrecords;

struct mn_plugin_ctx { int index; const char *name; const char *path; mn_status error; };

static bool valid_name(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++) if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* A plugin's record as this host reads it: the same ABI major, a size that
 * covers at least the core fields and no more than this header knows;
 * hints an older minor lacks are NULL in the host's copy. */
static mn_status widen(mn_plugin_ctx *ctx, const mn_op_def *op, mn_op_def **out)
{
    uint32_t major = op->abi_version >> 16, minor = op->abi_version & 0xffff;
    if (major != MN_PLUGIN_ABI_MAJOR || minor > MN_PLUGIN_ABI_MINOR || op->size < offsetof(mn_op_def, traits) ||
        op->size > sizeof *op)
        return mn__error(MN_ERR_UNSUPPORTED, "plugin %s: op record of %u bytes for ABI %u.%u; this mnemo reads ABI %d.%d "
                         "(records of %zu to %zu bytes): rebuild the plugin against this mnemo_plugin.h",
                         ctx->name, op->size, major, minor, MN_PLUGIN_ABI_MAJOR, MN_PLUGIN_ABI_MINOR,
                         offsetof(mn_op_def, traits), sizeof *op);
    mn_op_def **r = realloc(records, (size_t)(nrecords + 1) * sizeof *r);
    if (!r) return mn__error(MN_ERR_NOMEM, "plugin: out of memory");
    records = r;
    mn_op_def *w = calloc(1, sizeof *w);
    if (!w) return mn__error(MN_ERR_NOMEM, "plugin: out of memory");
    memcpy(w, op, op->size);
    w->size = sizeof *w;
    w->abi_version = MN_PLUGIN_ABI_VERSION;
    records[nrecords++] = w;
    *out = w;
    return MN_OK;
}

static void free_records(int keep)
{
    while (nrecords > keep) free(records[--nrecords]);
    if (!nrecords) { free(records); records = NULL; }
}

static mn_status register_op(mn_plugin_ctx *ctx, const mn_op_def *given)
{
    size_t n = strlen(ctx->name);
    if (!given || !given->name) return ctx->error = mn__error(MN_ERR_INVALID, "plugin %s: NULL op record", ctx->name);
    mn_op_def *op = NULL;
    mn_status ws = widen(ctx, given, &op);
    if (ws) return ctx->error = ws;
    if (strncmp(op->name, ctx->name, n) || op->name[n] != '.' || !op->name[n + 1])
        return ctx->error = mn__error(MN_ERR_INVALID, "plugin %s: op \"%s\" must be named \"%s.<op>\"", ctx->name, op->name, ctx->name);
    if (mn_op_find(op->name))
        return ctx->error = mn__error(MN_ERR_EXISTS, "plugin %s: op \"%s\" is already registered", ctx->name, op->name);
    char detail[256];
    mn_status s = mn__op_check(op, detail, sizeof detail);
    if (s) return ctx->error = mn__error(s, "plugin %s: %s", ctx->name, detail);
    return ctx->error = mn__op_append(op, ctx->index);
}

static mn_status host_graph_fail(mn_graph *g, mn_status code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return mn_graph_fail(g, code, "%s", buf);
}

static mn_status host_set_error(mn_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mn__verror(code, fmt, ap);
    va_end(ap);
    return code;
}

static const mn_plugin_host host = {
    .abi_major = MN_PLUGIN_ABI_MAJOR, .abi_minor = MN_PLUGIN_ABI_MINOR, .fingerprint = MN_PLUGIN_FINGERPRINT,
    .size = sizeof(mn_plugin_host), .register_op = register_op, .op = mn_op, .sum_to = mn_sum_to, .scalar = mn_scalar,
    .node_shape = mn_node_shape, .node_dtype = mn_node_dtype, .graph_fail = host_graph_fail, .set_error = host_set_error,
    .add = mn_add, .sub = mn_sub, .mul = mn_mul, .div = mn_div, .neg = mn_neg, .scale = mn_scale, .square = mn_square,
    .rsqrt = mn_rsqrt, .sigmoid = mn_sigmoid, .sum = mn_sum, .mean = mn_mean, .reshape = mn_reshape, .expand = mn_expand,
};

static mn_status check_info(const mn_plugin_info *info, const char *path)
{
    if (!info) return mn__error(MN_ERR_INVALID, "plugin %s: mn_plugin_entry returned NULL", path);
    if (info->abi_major != MN_PLUGIN_ABI_MAJOR)
        return mn__error(MN_ERR_UNSUPPORTED, "plugin %s (%s): ABI %u.%u, this mnemo has ABI %d.%d (major differs)", path,
                         info->name ? info->name : "?", info->abi_major, info->abi_minor, MN_PLUGIN_ABI_MAJOR, MN_PLUGIN_ABI_MINOR);
    if (info->abi_minor > MN_PLUGIN_ABI_MINOR)
        return mn__error(MN_ERR_UNSUPPORTED, "plugin %s (%s): ABI %u.%u is newer than this mnemo's %d.%d", path,
                         info->name ? info->name : "?", info->abi_major, info->abi_minor, MN_PLUGIN_ABI_MAJOR, MN_PLUGIN_ABI_MINOR);
    if (info->fingerprint != MN_PLUGIN_FINGERPRINT)
        return mn__error(MN_ERR_UNSUPPORTED, "plugin %s: struct fingerprint %08x differs from this mnemo's %08x (built against another header?)",
                         path, info->fingerprint, MN_PLUGIN_FINGERPRINT);
    if (!valid_name(info->name)) return mn__error(MN_ERR_INVALID, "plugin %s: bad name \"%s\" (use [a-z0-9_]+)", path, info->name ? info->name : "");
    if (!info->init) return mn__error(MN_ERR_INVALID, "plugin %s (%s): no init function", path, info->name);
    for (int i = 0; i < nplugins; i++)
        if (!strcmp(plugins[i].name, info->name))
            return mn__error(MN_ERR_EXISTS, "plugin %s: a plugin named \"%s\" is already loaded (%s)", path, info->name, plugins[i].path);
    return MN_OK;
}

mn_status mn_plugin_load(const char *path)
{
    if (!path) return mn__error(MN_ERR_MISUSE, "plugin_load: NULL path");
    struct stat st;
    if (stat(path, &st) != 0) return mn__error(MN_ERR_IO, "plugin %s: %s", path, strerror(errno));
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return mn__error(MN_ERR_FORMAT, "plugin %s: cannot load: %s", path, dlerror());
    mn_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, MN_PLUGIN_ENTRY);
    if (!entry) { dlclose(h); return mn__error(MN_ERR_FORMAT, "plugin %s: no %s symbol (not a mnemo plugin)", path, MN_PLUGIN_ENTRY); }
    const mn_plugin_info *info = entry();
    mn_status s = check_info(info, path);
    plugin *np = s ? NULL : realloc(plugins, (size_t)(nplugins + 1) * sizeof *np);
    if (!s && !np) s = mn__error(MN_ERR_NOMEM, "plugin: out of memory");
    if (s) { dlclose(h); return s; }
    plugins = np;
    int mark = mn__op_extra_count(), marked_records = nrecords;
    mn_plugin_ctx ctx = { nplugins, info->name, path, MN_OK };
    s = info->init(&host, &ctx);
    if (!s) s = ctx.error;
    if (s) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mn_errmsg());
        mn__error(s, "plugin %s (%s): init failed: %s", info->name, path, msg);   /* before dlclose: info lives in the plugin */
        mn__op_truncate(mark);
        free_records(marked_records);
        dlclose(h);
        return s;
    }
    plugin p = { strdup(info->name), strdup(info->version ? info->version : ""), strdup(path), h };
    if (!p.name || !p.version || !p.path) {
        free(p.name); free(p.version); free(p.path);
        mn__op_truncate(mark);
        dlclose(h);
        return mn__error(MN_ERR_NOMEM, "plugin %s: out of memory", path);
    }
    plugins[nplugins++] = p;
    return MN_OK;
}

int mn_plugin_count(void) { return nplugins; }
const char *mn_plugin_name(int i) { return i >= 0 && i < nplugins ? plugins[i].name : NULL; }
const char *mn_plugin_path(int i) { return i >= 0 && i < nplugins ? plugins[i].path : NULL; }
const char *mn_plugin_version(int i) { return i >= 0 && i < nplugins ? plugins[i].version : NULL; }

const char *mn_op_plugin(const mn_op_def *op)
{
    int p = op ? mn__op_plugin_of(op) : -1;
    return p >= 0 ? plugins[p].name : NULL;
}

void mn_plugins_unload(void)
{
    mn__op_truncate(0);
    free_records(0);
    for (int i = nplugins - 1; i >= 0; i--) {
        dlclose(plugins[i].handle);
        free(plugins[i].name); free(plugins[i].version); free(plugins[i].path);
    }
    free(plugins);
    plugins = NULL;
    nplugins = 0;
}
