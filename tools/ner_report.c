/* tools/ner_report.c: precision, recall, F1 and support per entity type
 * (seqeval's default classification_report) and per tag (scikit-learn's),
 * with their averages, printed in those libraries' layouts so numbers can
 * be compared line by line. Undefined ratios are 0, as both libraries
 * report them by default. */
#include "ner.h"
#include <stdlib.h>
#include <string.h>

static double ratio(int64_t a, int64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

/* Fills p, r, f from the counts; F1 as (1 + 1) * p * r / (p + r). */
static void score(mn_prf *x)
{
    x->p = ratio(x->tp, x->npred);
    x->r = ratio(x->tp, x->ntrue);
    double d = x->p + x->r;
    x->f = d == 0.0 ? 0.0 : 2.0 * x->p * x->r / d;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const mn_prf *)a)->name, ((const mn_prf *)b)->name);
}

/* Scores the rows, sorts them by name and adds the three averages. */
static void finish(mn_report *r)
{
    qsort(r->rows, (size_t)r->n, sizeof *r->rows, by_name);
    mn_prf sum = { 0 };
    double sp = 0, sr = 0, sf = 0, wp = 0, wr = 0, wf = 0;
    for (int i = 0; i < r->n; i++) {
        mn_prf *x = &r->rows[i];
        score(x);
        sum.tp += x->tp;
        sum.npred += x->npred;
        sum.ntrue += x->ntrue;
        sp += x->p;
        sr += x->r;
        sf += x->f;
        wp += x->p * (double)x->ntrue;
        wr += x->r * (double)x->ntrue;
        wf += x->f * (double)x->ntrue;
    }
    r->micro = sum;
    score(&r->micro);
    double n = r->n ? (double)r->n : 1.0, w = sum.ntrue ? (double)sum.ntrue : 1.0;
    r->macro = (mn_prf){ .ntrue = sum.ntrue, .p = sp / n, .r = sr / n, .f = sf / n };
    r->weighted = (mn_prf){ .ntrue = sum.ntrue, .p = wp / w, .r = wr / w, .f = wf / w };
    r->micro.name = r->tokens ? "accuracy" : "micro avg";
    r->macro.name = "macro avg";
    r->weighted.name = "weighted avg";
}

/* Rows for the labels 0..nlabels-1 that have index[label] >= 0. */
static mn_status make_rows(mn_report *r, int32_t *index, int32_t nlabels, const mn_strtab *names)
{
    r->n = 0;
    for (int32_t k = 0; k < nlabels; k++) r->n += index[k] >= 0;
    r->rows = calloc((size_t)(r->n ? r->n : 1), sizeof *r->rows);
    if (!r->rows) return mn_set_error(MN_ERR_NOMEM, "report: out of memory");
    int n = 0;
    for (int32_t k = 0; k < nlabels; k++) {
        if (index[k] < 0) continue;
        index[k] = n;
        r->rows[n++].name = names->str[k];
    }
    return MN_OK;
}

static mn_status valid_ids(const mn_tagset *ts, mn_tagseq q, const char *which)
{
    for (int64_t t = q.sent[0]; t < q.sent[q.nsent]; t++)
        if (q.ids[t] < 0 || q.ids[t] >= ts->tags.n)
            return mn_set_error(MN_ERR_INVALID, "report: %s token %lld has tag id %d of %d", which, (long long)t, q.ids[t], ts->tags.n);
    return MN_OK;
}

/* Counts true positives: spans with the same start, end and type. Both
 * lists are in order of distinct ends. */
static void count_entities(mn_report *r, const int32_t *index, const mn_spans *g, const mn_spans *p)
{
    for (int64_t i = 0; i < g->n; i++) r->rows[index[g->v[i].type]].ntrue++;
    for (int64_t j = 0; j < p->n; j++) r->rows[index[p->v[j].type]].npred++;
    for (int64_t i = 0, j = 0; i < g->n && j < p->n;) {
        mn_span a = g->v[i], b = p->v[j];
        if (a.end < b.end) { i++; continue; }
        if (b.end < a.end) { j++; continue; }
        if (a.start == b.start && a.type == b.type) r->rows[index[a.type]].tp++;
        i++;
        j++;
    }
}

mn_status mn_report_entities(const mn_tagset *ts, mn_tagseq gold, mn_tagseq pred, mn_report *r)
{
    memset(r, 0, sizeof *r);
    pred.sent = gold.sent;
    pred.nsent = gold.nsent;
    mn_spans g = { 0 }, p = { 0 };
    int32_t *index = malloc((size_t)ts->types.n * sizeof *index);
    mn_status s = index ? MN_OK : mn_set_error(MN_ERR_NOMEM, "report: out of memory");
    if (!s) s = mn_ner_entities(ts, gold, &g);
    if (!s) s = mn_ner_entities(ts, pred, &p);
    if (!s) {
        for (int32_t k = 0; k < ts->types.n; k++) index[k] = -1;
        for (int64_t i = 0; i < g.n; i++) index[g.v[i].type] = 0;
        for (int64_t j = 0; j < p.n; j++) index[p.v[j].type] = 0;
        s = make_rows(r, index, ts->types.n, &ts->types);
    }
    if (!s) {
        count_entities(r, index, &g, &p);
        finish(r);
    }
    free(index);
    mn_spans_free(&g);
    mn_spans_free(&p);
    if (s) mn_report_free(r);
    return s;
}

mn_status mn_report_tokens(const mn_tagset *ts, mn_tagseq gold, mn_tagseq pred, mn_report *r)
{
    memset(r, 0, sizeof *r);
    r->tokens = true;
    pred.sent = gold.sent;
    pred.nsent = gold.nsent;
    mn_status s = valid_ids(ts, gold, "gold");
    if (!s) s = valid_ids(ts, pred, "predicted");
    int32_t *index = s ? NULL : malloc((size_t)(ts->tags.n ? ts->tags.n : 1) * sizeof *index);
    if (!s && !index) s = mn_set_error(MN_ERR_NOMEM, "report: out of memory");
    int64_t lo = gold.sent[0], hi = gold.sent[gold.nsent];
    if (!s) {
        for (int32_t k = 0; k < ts->tags.n; k++) index[k] = -1;
        for (int64_t t = lo; t < hi; t++) index[gold.ids[t]] = index[pred.ids[t]] = 0;
        s = make_rows(r, index, ts->tags.n, &ts->tags);
    }
    for (int64_t t = lo; t < hi && !s; t++) {
        r->rows[index[gold.ids[t]]].ntrue++;
        r->rows[index[pred.ids[t]]].npred++;
        if (gold.ids[t] == pred.ids[t]) r->rows[index[gold.ids[t]]].tp++;
    }
    if (!s) {
        r->ntok = hi - lo;
        finish(r);
        for (int i = 0; i < r->n; i++) r->correct += r->rows[i].tp;
        r->micro.f = ratio(r->correct, r->ntok);   /* micro P = R = F1 = accuracy for single labels */
    }
    free(index);
    if (s) mn_report_free(r);
    return s;
}

/* ---- printing ---- */

/* Width of a UTF-8 string in characters, as Python's len counts them. */
static int text_width(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void pad(FILE *f, const char *name, int width)
{
    for (int i = text_width(name); i < width; i++) fputc(' ', f);
    fputs(name, f);
}

static void row(FILE *f, const mn_prf *x, int width, int digits)
{
    pad(f, x->name, width);
    fprintf(f, "  %9.*f %9.*f %9.*f %9lld\n", digits, x->p, digits, x->r, digits, x->f, (long long)x->ntrue);
}

void mn_report_print(FILE *f, const mn_report *r, int digits)
{
    int width = text_width("weighted avg");
    for (int i = 0; i < r->n; i++) width = text_width(r->rows[i].name) > width ? text_width(r->rows[i].name) : width;
    if (digits > width) width = digits;
    pad(f, "", width);
    fprintf(f, "  %9s %9s %9s %9s\n\n", "precision", "recall", "f1-score", "support");
    for (int i = 0; i < r->n; i++) row(f, &r->rows[i], width, digits);
    fputc('\n', f);
    if (r->tokens) {
        pad(f, r->micro.name, width);
        fprintf(f, "  %9s %9s %9.*f %9lld\n", "", "", digits, r->micro.f, (long long)r->ntok);
    } else {
        row(f, &r->micro, width, digits);
    }
    row(f, &r->macro, width, digits);
    row(f, &r->weighted, width, digits);
}

void mn_report_free(mn_report *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}
