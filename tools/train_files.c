/* tools/train_files.c: what `mnemo train` keeps beside the weights and
 * writes next to --out: the loop state stored in a checkpoint (parsed and
 * range-checked before use), the rule that an output is replaced only if it
 * is a regular file, stale temporaries of killed runs and the metrics file
 * cut back to a resumed step. The loss plot: plot.c. */
#include "train.h"
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- the loop state ---- */

void mn_train_state_json(const mn_train_state *s, char *buf, size_t n)
{
    snprintf(buf, n, "{\"step\":%lld,\"epoch\":%lld,\"example\":%lld,\"examples\":%lld,\"best\":%.17g,\"bad\":%d}",
             (long long)s->step, (long long)s->epoch, (long long)s->example, (long long)s->examples,
             isfinite(s->best) ? s->best : 1e300, s->bad);
}

/* An integer field of o in [lo, hi]. */
static mn_status int_field(json_t *o, const char *key, int64_t lo, int64_t hi, const char *path, const char *what, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) return mn_set_error(MN_ERR_FORMAT, "checkpoint %s: %s: \"%s\" is missing", path, what, key);
    if (!json_is_integer(v)) return mn_set_error(MN_ERR_FORMAT, "checkpoint %s: %s: \"%s\" is not an integer", path, what, key);
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return mn_set_error(MN_ERR_FORMAT, "checkpoint %s: %s: \"%s\" is %lld, outside [%lld, %lld]", path, what, key,
                            (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return MN_OK;
}

static json_t *object(const char *text, const char *path, const char *what, mn_status *s)
{
    json_t *o = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!text) *s = mn_set_error(MN_ERR_FORMAT, "checkpoint %s: no %s (not written by mnemo train)", path, what);
    else if (!json_is_object(o)) *s = mn_set_error(MN_ERR_FORMAT, "checkpoint %s: %s is not a JSON object", path, what);
    if (*s) { json_decref(o); return NULL; }
    return o;
}

/* batch, seq and limit of the stored config, which the state counts in. */
static mn_status saved_shape(const char *config_json, const char *path, mn_train_state *s)
{
    mn_status st = MN_OK;
    json_t *o = object(config_json, path, "config (mnemo.config)", &st);
    int64_t b = 0, q = 0, l = 0;
    if (!st) st = int_field(o, "batch", 1, INT_MAX, path, "config", &b);
    if (!st) st = int_field(o, "seq", 1, INT_MAX, path, "config", &q);
    if (!st) st = int_field(o, "limit", 0, INT_MAX, path, "config", &l);
    json_decref(o);
    s->batch = (int)b; s->seq = (int)q; s->limit = (int)l;
    return st;
}

/* best: a loss (>= 0: cross-entropy and the VAE's BCE + KL are), or 1e300
 * for "none yet". */
static mn_status best_field(json_t *o, const char *path, double *out)
{
    json_t *v = json_object_get(o, "best");
    if (!v) return mn_set_error(MN_ERR_FORMAT, "checkpoint %s: training state: \"best\" is missing", path);
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= 0))
        return mn_set_error(MN_ERR_FORMAT, "checkpoint %s: training state: \"best\" must be a loss >= 0", path);
    *out = x >= 1e300 ? INFINITY : x;
    return MN_OK;
}

/* The position in the epoch: "example" and "examples" since this format,
 * "pos" (batches of the stored batch) before it. */
static mn_status position(json_t *o, const char *path, mn_train_state *s)
{
    const char *w = "training state";
    if (!json_object_get(o, "example") && json_object_get(o, "pos")) {
        int64_t pos = 0;
        mn_status st = int_field(o, "pos", 0, MN_TRAIN_MAX_STEP / s->batch, path, w, &pos);
        s->example = pos * s->batch;
        s->examples = -1;
        return st;
    }
    mn_status st = int_field(o, "examples", 1, MN_TRAIN_MAX_STEP, path, w, &s->examples);
    if (!st) st = int_field(o, "example", 0, s->examples, path, w, &s->example);
    return st;
}

mn_status mn_train_state_parse(const char *state_json, const char *config_json, const char *path, mn_train_state *s)
{
    const char *w = "training state";
    memset(s, 0, sizeof *s);
    mn_status st = saved_shape(config_json, path, s);
    json_t *o = st ? NULL : object(state_json, path, "training state (mnemo.train_state)", &st);
    int64_t bad = 0;
    if (!st) st = int_field(o, "step", 0, MN_TRAIN_MAX_STEP, path, w, &s->step);
    if (!st) st = int_field(o, "epoch", 0, s->step, path, w, &s->epoch);        /* an epoch takes a step at least */
    if (!st) st = position(o, path, s);
    if (!st) st = best_field(o, path, &s->best);
    if (!st) st = int_field(o, "bad", 0, s->step < INT_MAX ? s->step : INT_MAX, path, w, &bad);   /* a validation follows a step */
    s->bad = (int)bad;
    json_decref(o);
    return st;
}

mn_status mn_train_state_fit(const mn_train_state *s, const char *path, int64_t items, const mn_train_cfg *c)
{
    bool legacy = s->examples < 0;
    bool same = legacy ? s->batch == c->batch && s->seq == c->seq && s->limit == c->limit && s->example <= items
                       : s->examples == items;
    if (same) return MN_OK;
    if (legacy)
        return mn_set_error(MN_ERR_INVALID, "checkpoint %s counts its position in batches of --batch %d (--seq %d, --limit %d); "
                            "resume it with those values (this run: --batch %d --seq %d --limit %d)",
                            path, s->batch, s->seq, s->limit, c->batch, c->seq, c->limit);
    return mn_set_error(MN_ERR_INVALID, "checkpoint %s was saved at example %lld of %lld training items per epoch "
                        "(--batch %d, --seq %d, --limit %d); this run has %lld items (--batch %d, --seq %d, --limit %d): "
                        "resume with the --seq, --limit and --data it was trained with (--batch may change unless it "
                        "moves the start of a text's validation split)",
                        path, (long long)s->example, (long long)s->examples, s->batch, s->seq, s->limit, (long long)items,
                        c->batch, c->seq, c->limit);
}

/* ---- output paths ---- */

mn_status mn_out_check_regular(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? MN_OK : mn_set_error(MN_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) return MN_OK;
    const char *kind = S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory"
                     : S_ISFIFO(st.st_mode) ? "a pipe" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "not a regular file";
    return mn_set_error(MN_ERR_INVALID, "%s is %s; mnemo writes only regular files or new paths", path, kind);
}

mn_status mn_out_check_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!*path) return mn_set_error(MN_ERR_INVALID, "the path is empty");
    if (!slash) return access(".", W_OK) == 0 ? MN_OK : mn_set_error(MN_ERR_IO, "%s: the current folder is not writable", path);
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    struct stat st;
    if (stat(dir, &st) != 0) return mn_set_error(MN_ERR_IO, "%s: the folder %s %s", path, dir, errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode)) return mn_set_error(MN_ERR_IO, "%s: %s is not a folder", path, dir);
    if (access(dir, W_OK | X_OK) != 0) return mn_set_error(MN_ERR_IO, "%s: the folder %s is not writable", path, dir);
    return MN_OK;
}

/* "NAME.tmp.PID" with the digits of a process that no longer exists. */
static bool stale_temp(const char *entry, const char *base, long *pid)
{
    size_t n = strlen(base);
    if (strncmp(entry, base, n) || strncmp(entry + n, ".tmp.", 5)) return false;
    const char *d = entry + n + 5;
    char *e;
    errno = 0;
    long p = strtol(d, &e, 10);
    if (!*d || *e || *d == '-' || *d == '+' || errno || p <= 0) return false;
    *pid = p;
    return kill((pid_t)p, 0) != 0 && errno == ESRCH;
}

int mn_out_clean_stale(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char dir[PATH_MAX], file[2 * PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + 1) : 0, path);     /* "" or "DIR/" */
    DIR *dp = *base ? opendir(*dir ? dir : ".") : NULL;
    int removed = 0;
    for (struct dirent *e = dp ? readdir(dp) : NULL; e; e = readdir(dp)) {
        long pid = 0;
        struct stat st;
        if (!stale_temp(e->d_name, base, &pid)) continue;
        snprintf(file, sizeof file, "%s%s", dir, e->d_name);
        if (lstat(file, &st) != 0 || !S_ISREG(st.st_mode) || unlink(file) != 0) continue;
        printf("removed %s, a temporary of process %ld, which is gone\n", file, pid);
        removed++;
    }
    if (dp) closedir(dp);
    return removed;
}

/* ---- metrics ---- */

/* A line of a metrics file is kept if it is a JSON object with a step up to
 * `step` (a line cut short by a kill is not). */
static bool keep_line(const char *line, int64_t step)
{
    json_t *o = json_loads(line, 0, NULL);
    json_t *v = json_object_get(o, "step");
    bool keep = json_is_integer(v) && json_integer_value(v) <= step;
    json_decref(o);
    return keep;
}

/* Copies the lines of `in` up to `step` into `out`; the count dropped, or
 * -1 if a line before the last is not a metrics line (not our file). */
static int64_t copy_upto(FILE *in, FILE *out, int64_t step, const char *path)
{
    char *line = NULL;
    size_t cap = 0;
    int64_t dropped = 0, lineno = 0, foreign = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) > 0) {
        lineno++;
        if (foreign) break;
        json_t *o = json_loads(line, 0, NULL);
        foreign = json_is_integer(json_object_get(o, "step")) ? 0 : lineno;
        json_decref(o);
        if (!keep_line(line, step)) { dropped++; continue; }
        fputs(line, out);
        if (line[n - 1] != '\n') fputc('\n', out);
    }
    free(line);
    if (foreign && lineno > foreign) {       /* the last line may be cut short by a kill */
        mn_set_error(MN_ERR_FORMAT, "metrics %s: line %lld is not a metrics line; not rewriting the file", path, (long long)foreign);
        return -1;
    }
    return dropped;
}

int64_t mn_metrics_truncate(const char *path, int64_t step)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;     /* absent, or a pipe or device: written in place */
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);                       /* a leftover (or planted link) of this name: never written through */
    FILE *in = fopen(path, "r"), *out = NULL;
    int fd = in ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644) : -1;
    if (fd >= 0 && !(out = fdopen(fd, "w"))) close(fd);
    int64_t dropped = out ? copy_upto(in, out, step, path) : -1;
    if (dropped < 0 && out) { fclose(out); fclose(in); unlink(tmp); return -1; }
    bool ok = out && !ferror(in) && fflush(out) == 0 && !ferror(out);
    if (out && fclose(out) != 0) ok = false;
    if (in) fclose(in);
    if (ok && rename(tmp, path) != 0) ok = false;
    if (out) unlink(tmp);                                           /* no-op after the rename */
    if (!ok) { mn_set_error(MN_ERR_IO, "metrics %s: cannot rewrite: %s", path, strerror(errno)); return -1; }
    return dropped;
}
