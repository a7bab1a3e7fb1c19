/* tools/plot.c: the loss plot of `mnemo train`. From the metrics file: the
 * training loss of every step (faint) and smoothed, the validation loss as
 * its own series, and a second panel for the other validation figures
 * (val_acc, or any val_* a model writes: BLEU, F1). Everything gnuplot
 * draws is written first to <png without .png>.gp (script and data, so
 * `gnuplot < X.loss.gp > X.loss.png` redraws it and tests read what was
 * plotted); gnuplot runs without a shell with that file as its standard
 * input and the image on its standard output: no path or string from a
 * file ever reaches a command interpreter or the script. */
#include "train.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { MAX_EXTRA = 4 };

typedef struct { double *v; size_t n, cap; } points;     /* (step, value) pairs */

typedef struct {
    points train, val;
    points extra[MAX_EXTRA];                             /* other numeric val_* keys of validation lines */
    char extra_name[MAX_EXTRA][32];
    int nextra;
} series;

static bool push(points *p, double step, double value)
{
    if (p->n + 2 > p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        double *v = realloc(p->v, cap * sizeof *v);
        if (!v) return false;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = step;
    p->v[p->n++] = value;
    return true;
}

static void series_free(series *s)
{
    free(s->train.v);
    free(s->val.v);
    for (int i = 0; i < MAX_EXTRA; i++) free(s->extra[i].v);
}

static bool finite_number(json_t *v) { return json_is_number(v) && isfinite(json_number_value(v)); }

/* The val_* figures of a validation line besides val_loss (names safe for the script: [a-z0-9_]). */
static bool push_extras(series *s, json_t *o, double step)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (strncmp(k, "val_", 4) || !strcmp(k, "val_loss") || !finite_number(v) || strlen(k) >= sizeof s->extra_name[0]) continue;
        if (strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(k)) continue;
        int i = 0;
        while (i < s->nextra && strcmp(s->extra_name[i], k)) i++;
        if (i == MAX_EXTRA) continue;
        if (i == s->nextra) snprintf(s->extra_name[s->nextra++], sizeof s->extra_name[0], "%s", k);
        if (!push(&s->extra[i], step, json_number_value(v))) return false;
    }
    return true;
}

/* Train points from lines without val_loss (a validation line's
 * train_loss is a running mean, not a step's loss), validation points
 * from the rest. */
static bool read_line(series *s, const char *line)
{
    json_t *o = json_loads(line, 0, NULL);
    json_t *st = json_object_get(o, "step"), *t = json_object_get(o, "train_loss"), *v = json_object_get(o, "val_loss");
    bool ok = true;
    double step = json_is_integer(st) ? (double)json_integer_value(st) : 0;
    if (json_is_integer(st) && v) {
        if (finite_number(v)) ok = push(&s->val, step, json_number_value(v));
        if (ok) ok = push_extras(s, o, step);
    } else if (json_is_integer(st) && finite_number(t)) {
        ok = push(&s->train, step, json_number_value(t));
    }
    json_decref(o);
    return ok;
}

static mn_status read_series(const char *metrics, series *s)
{
    struct stat st;                  /* a pipe or device (--metrics /dev/stdout) would block or never end */
    if (stat(metrics, &st) != 0 || !S_ISREG(st.st_mode))
        return mn_set_error(MN_ERR_INVALID, "metrics %s: not a regular file", metrics);
    FILE *f = fopen(metrics, "r");
    if (!f) return mn_set_error(MN_ERR_IO, "metrics %s: %s", metrics, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    bool ok = true;
    while (ok && getline(&line, &cap, f) > 0) ok = read_line(s, line);
    free(line);
    fclose(f);
    return ok ? MN_OK : mn_set_error(MN_ERR_NOMEM, "metrics %s: out of memory", metrics);
}

static void write_block(FILE *f, const char *title, const points *p)
{
    fprintf(f, "# %s\n", title);
    for (size_t i = 0; i < p->n; i += 2) fprintf(f, "%.0f %.9g\n", p->v[i], p->v[i + 1]);
    fprintf(f, "e\n");
}

/* An exponential moving average over about 1/40 of the steps (at least 5):
 * the trend through the per-step noise of small batches. */
static void write_smoothed(FILE *f, const points *p)
{
    size_t n = p->n / 2;
    double span = fmax(5.0, (double)n / 40.0), alpha = 2.0 / (span + 1.0), m = n ? p->v[1] : 0;
    fprintf(f, "# train (smoothed, span %.0f steps)\n", span);
    for (size_t i = 0; i < p->n; i += 2) {
        m += alpha * (p->v[i + 1] - m);
        fprintf(f, "%.0f %.9g\n", p->v[i], m);
    }
    fprintf(f, "e\n");
}

static void loss_panel(FILE *f, const series *s)
{
    bool tr = s->train.n > 0, va = s->val.n > 0;
    fprintf(f, "set ylabel 'loss'\nplot ");
    if (tr) fprintf(f, "'-' with lines lc rgb '#c8c8c8' title 'train (each step)', '-' with lines lw 2 lc rgb '#1f77b4' title 'train (smoothed)'");
    if (va) fprintf(f, "%s'-' with linespoints pt 7 lw 2 lc rgb '#d62728' title 'validation'", tr ? ", " : "");
    fprintf(f, "\n");
    if (tr) write_block(f, "train (each step)", &s->train);
    if (tr) write_smoothed(f, &s->train);
    if (va) write_block(f, "validation", &s->val);
}

/* "val_acc" -> "validation accuracy", "val_bleu" -> "validation bleu" */
static const char *title_of(const char *key, char *buf, size_t n)
{
    const char *k = key + 4;
    snprintf(buf, n, "validation %.31s", !strcmp(k, "acc") ? "accuracy" : k);
    for (char *p = buf; *p; p++) if (*p == '_') *p = ' ';
    return buf;
}

static void extra_panel(FILE *f, const series *s)
{
    char t[64];
    fprintf(f, "set ylabel '%s'\nplot ", s->nextra == 1 ? title_of(s->extra_name[0], t, sizeof t) : "validation");
    for (int i = 0; i < s->nextra; i++)
        fprintf(f, "%s'-' with linespoints pt 7 lw 2 lc rgb '#2ca02c' title '%s'", i ? ", " : "", title_of(s->extra_name[i], t, sizeof t));
    fprintf(f, "\n");
    for (int i = 0; i < s->nextra; i++) write_block(f, s->extra_name[i], &s->extra[i]);
}

/* The gnuplot input: constant text, names matched to [a-z0-9_] and numbers. */
static void write_script(FILE *f, const series *s)
{
    bool two = s->nextra > 0;
    fprintf(f, "# mnemo train's loss plot: gnuplot < THIS_FILE > plot.png\n");
    fprintf(f, "set terminal png size 1000,%d noenhanced\nset grid\nset key top right\nset xlabel 'step'\n", two ? 800 : 500);
    if (two) fprintf(f, "set multiplot layout 2,1\n");
    loss_panel(f, s);
    if (two) {
        extra_panel(f, s);
        fprintf(f, "unset multiplot\n");
    }
}

/* Runs gnuplot with stdin = in, stdout = out, stderr = /dev/null; its exit status. */
static mn_status run_gnuplot(int in, int out)
{
    posix_spawn_file_actions_t fa;
    char *argv[] = { "gnuplot", NULL };
    pid_t pid;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int e = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e == ENOENT) return mn_set_error(MN_ERR_NOTFOUND, "gnuplot not found (install gnuplot-nox)");
    if (e) return mn_set_error(MN_ERR_IO, "cannot run gnuplot: %s", strerror(e));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return mn_set_error(WIFEXITED(status) && WEXITSTATUS(status) == 127 ? MN_ERR_NOTFOUND : MN_ERR_RUNTIME,
                            "gnuplot failed (status %d)", status);
    return MN_OK;
}

static bool is_png(const char *path)
{
    unsigned char m[8] = { 0 };
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(m, 1, sizeof m, f) : 0;
    if (f) fclose(f);
    return n == 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8);
}

/* Writes the script to `gp` (through gp.tmp.PID, renamed over it). */
static mn_status save_script(const series *s, const char *gp)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", gp, (long)getpid());
    mn_status st = mn_out_check_regular(gp);
    int fd = st ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!st && !f) {
        if (fd >= 0) close(fd);
        return mn_set_error(MN_ERR_IO, "plot %s: cannot create %s: %s", gp, tmp, strerror(errno));
    }
    if (st) return st;
    write_script(f, s);
    bool ok = fflush(f) == 0 && !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, gp) != 0) ok = false;
    if (!ok) {
        unlink(tmp);
        return mn_set_error(MN_ERR_IO, "plot %s: %s", gp, strerror(errno));
    }
    return MN_OK;
}

/* gnuplot < gp > png (through png.tmp.PID, renamed over png when it is a PNG). */
static mn_status draw(const char *gp, const char *png)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", png, (long)getpid());
    int in = open(gp, O_RDONLY | O_NOFOLLOW);
    int out = in >= 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644) : -1;
    mn_status s = in < 0 ? mn_set_error(MN_ERR_IO, "plot %s: %s", gp, strerror(errno))
                : out < 0 ? mn_set_error(MN_ERR_IO, "plot %s: cannot create %s: %s", png, tmp, strerror(errno))
                : run_gnuplot(in, out);
    if (out >= 0 && close(out) != 0 && !s) s = mn_set_error(MN_ERR_IO, "plot %s: %s", tmp, strerror(errno));
    if (in >= 0) close(in);
    if (!s && !is_png(tmp)) s = mn_set_error(MN_ERR_RUNTIME, "plot %s: gnuplot wrote no PNG", png);
    if (!s) s = mn_out_check_regular(png);
    if (!s && rename(tmp, png) != 0) s = mn_set_error(MN_ERR_IO, "plot %s: rename: %s", png, strerror(errno));
    if (s && out >= 0) unlink(tmp);
    return s;
}

void mn_plot_script_path(const char *png, char *gp, size_t n)
{
    size_t k = strlen(png);
    if (k > 4 && !strcmp(png + k - 4, ".png")) k -= 4;
    snprintf(gp, n, "%.*s.gp", (int)k, png);
}

mn_status mn_plot_losses(const char *metrics, const char *png)
{
    series s;
    char gp[PATH_MAX + 8];
    memset(&s, 0, sizeof s);
    mn_plot_script_path(png, gp, sizeof gp);
    mn_status st = mn_out_check_regular(png);
    if (!st) st = read_series(metrics, &s);
    if (!st && !s.train.n && !s.val.n) st = mn_set_error(MN_ERR_INVALID, "metrics %s: no losses to plot", metrics);
    if (!st) st = save_script(&s, gp);
    if (!st) st = draw(gp, png);
    series_free(&s);
    return st;
}
