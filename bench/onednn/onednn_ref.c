/* bench/onednn/onednn_ref.c: the reference the recurrent workloads are
 * measured against (issue 24): a complete training step of mnemo bench's
 * lstm, gru and lstm_2layer char LMs built on oneDNN's RNN primitives
 * (forward_training + backward, weights in format `any`, EXPLICIT zero
 * initial states: oneDNN 2.6.3 returns wrong recurrent-weight gradients when
 * they are omitted), dnnl_sgemm for the head, cross-entropy and Adam. With
 * --check it runs one step on small shapes and compares every gradient with
 * central differences of a double-precision forward written here from
 * oneDNN's documented cell equations; nonzero exit when they disagree.
 * Standalone program, built by scripts/build-onednn-ref.sh; not part of the
 * library. The GRU is oneDNN's linear-before-reset GRU (PyTorch's form). */
#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHK(x) chk((x), #x, __LINE__)

static void chk(dnnl_status_t s, const char *what, int line)
{
    if (s == dnnl_success) return;
    fprintf(stderr, "onednn_ref: line %d: %s failed (status %d)\n", line, what, (int)s);
    exit(2);
}

static float *fmem(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) { fprintf(stderr, "onednn_ref: out of memory\n"); exit(2); }
    return p;
}

/* ---- shapes and parameters ---- */

typedef struct { int64_t V, E, H, T, B; int layers; bool lstm; } shape;

static int gates(const shape *s) { return s->lstm ? 4 : 3; }
/* 4 bias rows either way: LSTM i, f, c, o; lbr GRU u, r, o and the o gate's recurrent bias */
static int bias_gates(const shape *s) { (void)s; return 4; }

typedef struct { float *w, *g, *m, *v; size_t n; } param;   /* value, gradient, Adam moments (user layout) */

static void param_init(param *p, size_t n)
{
    p->n = n;
    p->w = fmem(n);
    p->g = fmem(n);
    p->m = fmem(n);
    p->v = fmem(n);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float uniform(float lo, float hi)   /* xorshift64*, enough for weights and tokens */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (float)((r >> 40) * (1.0 / 16777216.0));
}

static void fill(param *p, float k)
{
    for (size_t i = 0; i < p->n; i++) p->w[i] = uniform(-k, k);
}

/* ---- one recurrent layer on oneDNN ---- */

typedef struct {
    dnnl_memory_t user, prim;   /* prim == user when the formats agree */
    dnnl_primitive_t reorder;   /* user -> prim (weights) or prim -> user (gradients) */
} wmem;

typedef struct {
    int64_t I;                                   /* input width */
    param wx, wh, b;                             /* ldigo, ldigo, ldgo */
    float *src, *dst, *dsrc, *ddst;              /* tnc */
    float *h0, *c0, *hT, *cT, *dhT, *dcT, *dh0, *dc0;   /* ldnc: zero states and their gradients */
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t ws;
    wmem fwx, fwh, bwx, bwh, dwx, dwh;
    dnnl_memory_t m_src, m_dst, m_dsrc, m_ddst, m_b, m_db, m_h0, m_c0, m_hT, m_cT, m_dhT, m_dcT, m_dh0, m_dc0;
} layer;

typedef struct {
    shape s;
    bool omit_state;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    param emb, hw, hb;          /* V x E; head V x H and V */
    layer L[2];
    int32_t *x, *y;             /* T x B tokens and targets */
    float *logits;              /* T*B x V; the gradient in place after the loss */
    double rnn_ms;              /* time in the RNN primitives (and their weight reorders) of the last step */
} model;

static dnnl_memory_desc_t md(int nd, const dnnl_dims_t dims, dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t d;
    CHK(dnnl_memory_desc_init_by_tag(&d, nd, dims, dnnl_f32, tag));
    return d;
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *d, dnnl_engine_t eng, void *h)
{
    dnnl_memory_t m;
    CHK(dnnl_memory_create(&m, d, eng, h ? h : DNNL_MEMORY_ALLOCATE));
    return m;
}

static const dnnl_memory_desc_t *arg_md(dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

/* The weights in the primitive's format: a reorder when it differs from ldigo. */
static wmem wmem_make(dnnl_engine_t eng, const dnnl_memory_desc_t *user, float *data, const dnnl_memory_desc_t *prim, bool to_prim)
{
    wmem w = { mem(user, eng, data), NULL, NULL };
    if (dnnl_memory_desc_equal(user, prim)) { w.prim = w.user; return w; }
    w.prim = mem(prim, eng, NULL);
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = to_prim ? user : prim, *to = to_prim ? prim : user;
    CHK(dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, NULL));
    CHK(dnnl_primitive_create(&w.reorder, rpd));
    CHK(dnnl_primitive_desc_destroy(rpd));
    return w;
}

static void wmem_reorder(wmem *w, dnnl_stream_t st, bool to_prim)
{
    if (!w->reorder) return;
    dnnl_exec_arg_t a[2] = { { DNNL_ARG_FROM, to_prim ? w->user : w->prim }, { DNNL_ARG_TO, to_prim ? w->prim : w->user } };
    CHK(dnnl_primitive_execute(w->reorder, st, 2, a));
}

static void wmem_zero(wmem *w)
{
    void *h;
    const dnnl_memory_desc_t *d;
    CHK(dnnl_memory_get_data_handle(w->prim, &h));
    CHK(dnnl_memory_get_memory_desc(w->prim, &d));
    memset(h, 0, dnnl_memory_desc_get_size(d));
}

typedef struct { dnnl_memory_desc_t src, h, wx, wh, b, dst, any_wx, any_wh; } layer_mds;

static layer_mds layer_descs(const shape *s, int64_t I)
{
    layer_mds d;
    int64_t G = gates(s), H = s->H;
    d.src = md(3, (dnnl_dims_t){ s->T, s->B, I }, dnnl_tnc);
    d.dst = md(3, (dnnl_dims_t){ s->T, s->B, H }, dnnl_tnc);
    d.h = md(4, (dnnl_dims_t){ 1, 1, s->B, H }, dnnl_ldnc);
    d.wx = md(5, (dnnl_dims_t){ 1, 1, I, G, H }, dnnl_ldigo);
    d.wh = md(5, (dnnl_dims_t){ 1, 1, H, G, H }, dnnl_ldigo);
    d.any_wx = md(5, (dnnl_dims_t){ 1, 1, I, G, H }, dnnl_format_tag_any);
    d.any_wh = md(5, (dnnl_dims_t){ 1, 1, H, G, H }, dnnl_format_tag_any);
    d.b = md(4, (dnnl_dims_t){ 1, 1, bias_gates(s), H }, dnnl_ldgo);
    return d;
}

static dnnl_primitive_desc_t fwd_pd(model *M, const layer_mds *d)
{
    dnnl_rnn_desc_t r;
    const dnnl_memory_desc_t *h0 = M->omit_state ? NULL : &d->h;
    if (M->s.lstm)
        CHK(dnnl_lstm_forward_desc_init(&r, dnnl_forward_training, dnnl_unidirectional_left2right, &d->src, h0, h0,
                                        &d->any_wx, &d->any_wh, &d->b, &d->dst, &d->h, &d->h, 0));
    else
        CHK(dnnl_lbr_gru_forward_desc_init(&r, dnnl_forward_training, dnnl_unidirectional_left2right, &d->src, h0,
                                           &d->any_wx, &d->any_wh, &d->b, &d->dst, &d->h, 0));
    dnnl_primitive_desc_t pd;
    CHK(dnnl_primitive_desc_create(&pd, &r, NULL, M->eng, NULL));
    return pd;
}

static dnnl_primitive_desc_t bwd_pd(model *M, const layer_mds *d, dnnl_primitive_desc_t hint)
{
    dnnl_rnn_desc_t r;
    const dnnl_memory_desc_t *h0 = M->omit_state ? NULL : &d->h;
    if (M->s.lstm)
        CHK(dnnl_lstm_backward_desc_init(&r, dnnl_backward, dnnl_unidirectional_left2right, &d->src, h0, h0, &d->any_wx,
                                         &d->any_wh, &d->b, &d->dst, &d->h, &d->h, &d->src, h0, h0, &d->any_wx, &d->any_wh,
                                         &d->b, &d->dst, &d->h, &d->h, 0));
    else
        CHK(dnnl_lbr_gru_backward_desc_init(&r, dnnl_backward, dnnl_unidirectional_left2right, &d->src, h0, &d->any_wx,
                                            &d->any_wh, &d->b, &d->dst, &d->h, &d->src, h0, &d->any_wx, &d->any_wh, &d->b,
                                            &d->dst, &d->h, 0));
    dnnl_primitive_desc_t pd;
    CHK(dnnl_primitive_desc_create(&pd, &r, NULL, M->eng, hint));
    return pd;
}

static void layer_buffers(model *M, layer *l, const layer_mds *d)
{
    const shape *s = &M->s;
    size_t bh = (size_t)(s->B * s->H);
    l->dst = fmem((size_t)(s->T * s->B * s->H));
    l->dsrc = fmem((size_t)(s->T * s->B * l->I));
    l->ddst = fmem((size_t)(s->T * s->B * s->H));
    float **st[8] = { &l->h0, &l->c0, &l->hT, &l->cT, &l->dhT, &l->dcT, &l->dh0, &l->dc0 };
    for (int i = 0; i < 8; i++) *st[i] = fmem(bh);
    l->m_src = mem(&d->src, M->eng, l->src);
    l->m_dst = mem(&d->dst, M->eng, l->dst);
    l->m_dsrc = mem(&d->src, M->eng, l->dsrc);
    l->m_ddst = mem(&d->dst, M->eng, l->ddst);
    l->m_b = mem(&d->b, M->eng, l->b.w);
    l->m_db = mem(&d->b, M->eng, l->b.g);
    dnnl_memory_t *sm[8] = { &l->m_h0, &l->m_c0, &l->m_hT, &l->m_cT, &l->m_dhT, &l->m_dcT, &l->m_dh0, &l->m_dc0 };
    for (int i = 0; i < 8; i++) *sm[i] = mem(&d->h, M->eng, *st[i]);
}

/* Builds layer l's primitives; l->src must already point at its input. */
static void layer_build(model *M, layer *l)
{
    layer_mds d = layer_descs(&M->s, l->I);
    layer_buffers(M, l, &d);
    dnnl_primitive_desc_t f = fwd_pd(M, &d), b = bwd_pd(M, &d, f);
    l->fwx = wmem_make(M->eng, &d.wx, l->wx.w, arg_md(f, DNNL_ARG_WEIGHTS_LAYER), true);
    l->fwh = wmem_make(M->eng, &d.wh, l->wh.w, arg_md(f, DNNL_ARG_WEIGHTS_ITER), true);
    l->bwx = wmem_make(M->eng, &d.wx, l->wx.w, arg_md(b, DNNL_ARG_WEIGHTS_LAYER), true);
    l->bwh = wmem_make(M->eng, &d.wh, l->wh.w, arg_md(b, DNNL_ARG_WEIGHTS_ITER), true);
    l->dwx = wmem_make(M->eng, &d.wx, l->wx.g, arg_md(b, DNNL_ARG_DIFF_WEIGHTS_LAYER), false);
    l->dwh = wmem_make(M->eng, &d.wh, l->wh.g, arg_md(b, DNNL_ARG_DIFF_WEIGHTS_ITER), false);
    l->ws = mem(dnnl_primitive_desc_query_md(f, dnnl_query_workspace_md, 0), M->eng, NULL);
    CHK(dnnl_primitive_create(&l->fwd, f));
    CHK(dnnl_primitive_create(&l->bwd, b));
    CHK(dnnl_primitive_desc_destroy(f));
    CHK(dnnl_primitive_desc_destroy(b));
}

static int state_args(const model *M, const layer *l, dnnl_exec_arg_t *a, bool bwd)
{
    int n = 0;
    if (!M->omit_state) {
        a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_ITER, l->m_h0 };
        if (M->s.lstm) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC_ITER_C, l->m_c0 };
        if (bwd) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DIFF_SRC_ITER, l->m_dh0 };
        if (bwd && M->s.lstm) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DIFF_SRC_ITER_C, l->m_dc0 };
    }
    a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DST_ITER, l->m_hT };
    if (M->s.lstm) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DST_ITER_C, l->m_cT };
    if (bwd) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DIFF_DST_ITER, l->m_dhT };
    if (bwd && M->s.lstm) a[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DIFF_DST_ITER_C, l->m_dcT };
    return n;
}

static void layer_forward(model *M, layer *l)
{
    dnnl_exec_arg_t a[16] = { { DNNL_ARG_SRC_LAYER, l->m_src }, { DNNL_ARG_WEIGHTS_LAYER, l->fwx.prim },
                              { DNNL_ARG_WEIGHTS_ITER, l->fwh.prim }, { DNNL_ARG_BIAS, l->m_b },
                              { DNNL_ARG_DST_LAYER, l->m_dst }, { DNNL_ARG_WORKSPACE, l->ws } };
    int n = 6 + state_args(M, l, a + 6, false);
    wmem_reorder(&l->fwx, M->st, true);
    wmem_reorder(&l->fwh, M->st, true);
    CHK(dnnl_primitive_execute(l->fwd, M->st, n, a));
}

/* Gradients of the layer's weights into l->wx.g, wh.g, b.g (user layout), of its input into l->dsrc. */
static void layer_backward(model *M, layer *l)
{
    dnnl_exec_arg_t a[24] = { { DNNL_ARG_SRC_LAYER, l->m_src }, { DNNL_ARG_WEIGHTS_LAYER, l->bwx.prim },
                              { DNNL_ARG_WEIGHTS_ITER, l->bwh.prim }, { DNNL_ARG_BIAS, l->m_b },
                              { DNNL_ARG_DST_LAYER, l->m_dst }, { DNNL_ARG_WORKSPACE, l->ws },
                              { DNNL_ARG_DIFF_SRC_LAYER, l->m_dsrc }, { DNNL_ARG_DIFF_DST_LAYER, l->m_ddst },
                              { DNNL_ARG_DIFF_WEIGHTS_LAYER, l->dwx.prim }, { DNNL_ARG_DIFF_WEIGHTS_ITER, l->dwh.prim },
                              { DNNL_ARG_DIFF_BIAS, l->m_db } };
    int n = 11 + state_args(M, l, a + 11, true);
    size_t bh = (size_t)(M->s.B * M->s.H) * sizeof(float);
    memset(l->dhT, 0, bh);
    memset(l->dcT, 0, bh);
    wmem_zero(&l->dwx);                          /* the primitive accumulates into its weight gradients */
    wmem_zero(&l->dwh);
    memset(l->b.g, 0, l->b.n * sizeof(float));
    wmem_reorder(&l->bwx, M->st, true);
    wmem_reorder(&l->bwh, M->st, true);
    CHK(dnnl_primitive_execute(l->bwd, M->st, n, a));
    wmem_reorder(&l->dwx, M->st, false);
    wmem_reorder(&l->dwh, M->st, false);
}

/* ---- the model ---- */

static void model_init(model *M, shape s, bool omit_state)
{
    memset(M, 0, sizeof *M);
    M->s = s;
    M->omit_state = omit_state;
    CHK(dnnl_engine_create(&M->eng, dnnl_cpu, 0));
    CHK(dnnl_stream_create(&M->st, M->eng, dnnl_stream_default_flags));
    int64_t G = gates(&s), H = s.H;
    float k = 1.0f / sqrtf((float)H);
    param_init(&M->emb, (size_t)(s.V * s.E));
    param_init(&M->hw, (size_t)(s.V * H));
    param_init(&M->hb, (size_t)s.V);
    for (size_t i = 0; i < M->emb.n; i++) M->emb.w[i] = uniform(-1.7f, 1.7f);   /* unit variance */
    fill(&M->hw, k);
    fill(&M->hb, k);
    float *in = NULL;
    for (int i = 0; i < s.layers; i++) {
        layer *l = &M->L[i];
        l->I = i ? H : s.E;
        param_init(&l->wx, (size_t)(l->I * G * H));
        param_init(&l->wh, (size_t)(H * G * H));
        param_init(&l->b, (size_t)(bias_gates(&s) * H));
        fill(&l->wx, k);
        fill(&l->wh, k);
        fill(&l->b, k);
        l->src = i ? in : fmem((size_t)(s.T * s.B * s.E));
        layer_build(M, l);
        in = l->dst;
    }
    M->x = malloc((size_t)(s.T * s.B) * sizeof *M->x);
    M->y = malloc((size_t)(s.T * s.B) * sizeof *M->y);
    M->logits = fmem((size_t)(s.T * s.B * s.V));
    if (!M->x || !M->y) { fprintf(stderr, "onednn_ref: out of memory\n"); exit(2); }
    for (int64_t i = 0; i < s.T * s.B; i++) {
        M->x[i] = (int32_t)uniform(0, (float)s.V) % (int32_t)s.V;
        M->y[i] = (int32_t)uniform(0, (float)s.V) % (int32_t)s.V;
    }
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

/* CPU time of the process (every thread), for cpu_per_wall: on a shared
 * machine, median x cpu_per_wall is the step's CPU time, which holds up
 * better than the wall time when other processes take the cores. */
static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static void embed(model *M)
{
    const shape *s = &M->s;
    float *out = M->L[0].src;
#pragma omp parallel for
    for (int64_t i = 0; i < s->T * s->B; i++) memcpy(out + i * s->E, M->emb.w + (int64_t)M->x[i] * s->E, (size_t)s->E * sizeof(float));
}

/* logits = h W^T + b; mean cross-entropy; logits become d loss / d logits. */
static double head_loss(model *M, const float *h)
{
    const shape *s = &M->s;
    int64_t N = s->T * s->B, V = s->V;
    float *z = M->logits;
    CHK(dnnl_sgemm('N', 'T', N, V, s->H, 1.0f, h, s->H, M->hw.w, s->H, 0.0f, z, V));
    double loss = 0;
#pragma omp parallel for reduction(+ : loss)
    for (int64_t i = 0; i < N; i++) {
        float *r = z + i * V, mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < V; j++) { r[j] += M->hb.w[j]; mx = r[j] > mx ? r[j] : mx; }
        for (int64_t j = 0; j < V; j++) { r[j] = expf(r[j] - mx); sum += r[j]; }
        loss += log(sum) - log(r[M->y[i]]);
        for (int64_t j = 0; j < V; j++) r[j] = r[j] / sum / (float)N;
        r[M->y[i]] -= 1.0f / (float)N;
    }
    return loss / (double)N;
}

/* Head gradients from the logits' gradient; d loss / d h into dh. */
static void head_backward(model *M, const float *h, float *dh)
{
    const shape *s = &M->s;
    int64_t N = s->T * s->B, V = s->V;
    const float *dz = M->logits;
    CHK(dnnl_sgemm('T', 'N', V, s->H, N, 1.0f, dz, V, h, s->H, 0.0f, M->hw.g, s->H));
    CHK(dnnl_sgemm('N', 'N', N, s->H, V, 1.0f, dz, V, M->hw.w, s->H, 0.0f, dh, s->H));
#pragma omp parallel for
    for (int64_t j = 0; j < V; j++) {
        float acc = 0;
        for (int64_t i = 0; i < N; i++) acc += dz[i * V + j];
        M->hb.g[j] = acc;
    }
}

static void embed_backward(model *M)
{
    const shape *s = &M->s;
    const float *dx = M->L[0].dsrc;
    memset(M->emb.g, 0, M->emb.n * sizeof(float));
    for (int64_t i = 0; i < s->T * s->B; i++) {        /* serial: rows may repeat */
        float *row = M->emb.g + (int64_t)M->x[i] * s->E;
        for (int64_t e = 0; e < s->E; e++) row[e] += dx[i * s->E + e];
    }
}

/* Forward, loss, backward: every parameter's gradient in its user layout. */
static double forward_backward(model *M)
{
    int nl = M->s.layers;
    embed(M);
    double t0 = now_ms();
    for (int i = 0; i < nl; i++) layer_forward(M, &M->L[i]);
    M->rnn_ms = now_ms() - t0;
    double loss = head_loss(M, M->L[nl - 1].dst);
    head_backward(M, M->L[nl - 1].dst, M->L[nl - 1].ddst);
    t0 = now_ms();
    for (int i = nl - 1; i >= 0; i--) {
        layer_backward(M, &M->L[i]);
        if (i) memcpy(M->L[i - 1].ddst, M->L[i].dsrc, (size_t)(M->s.T * M->s.B * M->s.H) * sizeof(float));
    }
    M->rnn_ms += now_ms() - t0;
    embed_backward(M);
    return loss;
}

static void adam(param *p, int step)
{
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    float *w = p->w, *g = p->g, *m = p->m, *v = p->v;
#pragma omp parallel for simd
    for (size_t i = 0; i < p->n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

static void train_step(model *M, int step)
{
    forward_backward(M);
    adam(&M->emb, step);
    adam(&M->hw, step);
    adam(&M->hb, step);
    for (int i = 0; i < M->s.layers; i++) {
        adam(&M->L[i].wx, step);
        adam(&M->L[i].wh, step);
        adam(&M->L[i].b, step);
    }
}

/* ---- the double-precision reference (oneDNN's documented equations) ---- */

static double sigm(double x) { return 1 / (1 + exp(-x)); }

/* One layer over T steps from zero state: in T x B x I -> out T x B x H. */
static void ref_layer(const model *M, const layer *l, const double *in, double *out)
{
    const shape *s = &M->s;
    int64_t H = s->H, G = gates(s), I = l->I;
    double *h = calloc((size_t)(s->B * H), sizeof *h), *c = calloc((size_t)(s->B * H), sizeof *c);
    double *a = malloc((size_t)(G * H) * sizeof *a), *u = malloc((size_t)(G * H) * sizeof *u);
    for (int64_t t = 0; t < s->T; t++)
        for (int64_t b = 0; b < s->B; b++) {
            const double *x = in + (t * s->B + b) * I;
            double *hb = h + b * H, *cb = c + b * H;
            for (int64_t j = 0; j < G * H; j++) {
                a[j] = 0;
                u[j] = 0;
                for (int64_t i = 0; i < I; i++) a[j] += x[i] * l->wx.w[i * G * H + j];
                for (int64_t i = 0; i < H; i++) u[j] += hb[i] * l->wh.w[i * G * H + j];
            }
            for (int64_t o = 0; o < H; o++) {
                const float *bb = l->b.w;
                if (s->lstm) {
                    double ig = sigm(a[o] + u[o] + bb[o]), fg = sigm(a[H + o] + u[H + o] + bb[H + o]);
                    double gg = tanh(a[2 * H + o] + u[2 * H + o] + bb[2 * H + o]), og = sigm(a[3 * H + o] + u[3 * H + o] + bb[3 * H + o]);
                    cb[o] = fg * cb[o] + ig * gg;
                    out[(t * s->B + b) * H + o] = og * tanh(cb[o]);
                } else {
                    double ug = sigm(a[o] + u[o] + bb[o]), rg = sigm(a[H + o] + u[H + o] + bb[H + o]);
                    double og = tanh(a[2 * H + o] + bb[2 * H + o] + rg * (u[2 * H + o] + bb[3 * H + o]));
                    out[(t * s->B + b) * H + o] = ug * hb[o] + (1 - ug) * og;
                }
            }
            for (int64_t o = 0; o < H; o++) hb[o] = out[(t * s->B + b) * H + o];
        }
    free(h);
    free(c);
    free(a);
    free(u);
}

static double ref_loss(const model *M)
{
    const shape *s = &M->s;
    int64_t N = s->T * s->B, H = s->H;
    double *x = malloc((size_t)(N * (s->E > H ? s->E : H)) * sizeof *x), *y = malloc((size_t)(N * H) * sizeof *y);
    for (int64_t i = 0; i < N; i++)
        for (int64_t e = 0; e < s->E; e++) x[i * s->E + e] = M->emb.w[(int64_t)M->x[i] * s->E + e];
    for (int i = 0; i < s->layers; i++) {
        ref_layer(M, &M->L[i], x, y);
        memcpy(x, y, (size_t)(N * H) * sizeof *x);
    }
    double loss = 0;
    for (int64_t i = 0; i < N; i++) {
        double z[256], mx = -INFINITY, sum = 0;
        for (int64_t v = 0; v < s->V; v++) {
            z[v] = M->hb.w[v];
            for (int64_t k = 0; k < H; k++) z[v] += x[i * H + k] * M->hw.w[v * H + k];
            mx = z[v] > mx ? z[v] : mx;
        }
        for (int64_t v = 0; v < s->V; v++) sum += exp(z[v] - mx);
        loss += log(sum) + mx - z[M->y[i]];
    }
    free(x);
    free(y);
    return loss / (double)N;
}

/* Every entry of p: central difference of ref_loss against p->g; max error relative to the largest gradient. */
static double check_param(model *M, param *p, const char *name)
{
    double worst = 0, scale = 1e-12;
    const float h = 1e-3f;
    for (size_t i = 0; i < p->n; i++) {
        float w = p->w[i];
        p->w[i] = w + h;
        double up = ref_loss(M);
        p->w[i] = w - h;
        double dn = ref_loss(M);
        p->w[i] = w;
        double num = (up - dn) / (double)((w + h) - (w - h));
        double err = fabs(num - (double)p->g[i]);
        worst = err > worst ? err : worst;
        scale = fabs(num) > scale ? fabs(num) : scale;
    }
    printf("  %-10s %5zu entries  max |grad - numerical| / max |numerical| = %.2e\n", name, p->n, worst / scale);
    return worst / scale;
}

static int run_check(const char *workload, bool omit_state)
{
    shape s = { .V = 7, .E = 5, .H = 6, .T = 5, .B = 3, .layers = !strcmp(workload, "lstm_2layer") ? 2 : 1,
                .lstm = strcmp(workload, "gru") != 0 };
    model M;
    model_init(&M, s, omit_state);
    double loss = forward_backward(&M), ref = ref_loss(&M), worst = fabs(loss - ref) / fabs(ref);
    printf("onednn_ref --check %s%s: loss %.6f, double reference %.6f (relative %.1e)\n", workload,
           omit_state ? " (initial state omitted)" : "", loss, ref, worst);
    param *ps[9] = { &M.emb, &M.hw, &M.hb };
    char names[9][16] = { "emb", "head.w", "head.b" };
    int np = 3;
    for (int i = 0; i < s.layers; i++) {
        param *lp[3] = { &M.L[i].wx, &M.L[i].wh, &M.L[i].b };
        const char *ln[3] = { "w_ih", "w_hh", "bias" };
        for (int k = 0; k < 3; k++) {
            ps[np] = lp[k];
            snprintf(names[np], sizeof names[np], "%s_l%d", ln[k], i);
            np++;
        }
    }
    for (int k = 0; k < np; k++) {
        double e = check_param(&M, ps[k], names[k]);
        worst = e > worst ? e : worst;
    }
    bool ok = worst < 1e-4;
    printf("%s: worst relative error %.2e (bound 1e-4)\n", ok ? "PASS" : "FAIL", worst);
    return ok ? 0 : 1;
}

/* ---- timing ---- */

static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

static int run_bench(const char *workload, int threads, double budget)
{
    shape s = { .V = 96, .E = 64, .H = 256, .T = 64, .B = 32, .layers = !strcmp(workload, "lstm_2layer") ? 2 : 1,
                .lstm = strcmp(workload, "gru") != 0 };
    model M;
    model_init(&M, s, false);
    int step = 1;
    double t0 = now_ms();
    for (int i = 0; i < 3; i++) train_step(&M, step++);
    double per = (now_ms() - t0) / 3;
    int n = (int)(budget * 1e3 / (per > 1e-3 ? per : 1e-3));
    n = n < 5 ? 5 : n > 200 ? 200 : n;
    double *ms = malloc((size_t)n * sizeof *ms), *rnn = malloc((size_t)n * sizeof *rnn);
    double c0 = cpu_ms(), w0 = now_ms();
    for (int i = 0; i < n; i++) {
        double a = now_ms();
        train_step(&M, step++);
        ms[i] = now_ms() - a;
        rnn[i] = M.rnn_ms;
    }
    double cpu_per_wall = (cpu_ms() - c0) / (now_ms() - w0);
    double lo = ms[0], hi = ms[0];
    for (int i = 0; i < n; i++) { lo = ms[i] < lo ? ms[i] : lo; hi = ms[i] > hi ? ms[i] : hi; }
    const dnnl_version_t *v = dnnl_version();
    printf("{\"workload\": \"%s\", \"impl\": \"onednn\", \"onednn\": \"%d.%d.%d\", \"threads\": %d, \"train_ms_median\": %.3f, "
           "\"train_ms_min\": %.3f, \"train_ms_max\": %.3f, \"rnn_ms_median\": %.3f, \"n_train\": %d, \"cpu_per_wall\": %.2f}\n",
           workload, v->major, v->minor, v->patch, threads, median(ms, n), lo, hi, median(rnn, n), n, cpu_per_wall);
    free(ms);
    free(rnn);
    return 0;
}

int main(int argc, char **argv)
{
    const char *workload = "lstm";
    int threads = 1;
    double budget = 3;
    bool check = false, omit = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--workload") && i + 1 < argc) workload = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = atof(argv[++i]);
        else if (!strcmp(argv[i], "--check")) check = true;
        else if (!strcmp(argv[i], "--omit-state")) omit = true;
        else {
            fprintf(stderr, "usage: onednn_ref [--workload lstm|gru|lstm_2layer] [--threads N] [--budget SECONDS]\n"
                            "       onednn_ref --check [--workload lstm|gru|lstm_2layer|all] [--omit-state]\n");
            return 2;
        }
    }
    if (threads < 1 || !(budget > 0)) { fprintf(stderr, "onednn_ref: bad --threads or --budget\n"); return 2; }
    omp_set_num_threads(threads);
    if (check && !strcmp(workload, "all"))   /* the suite's test: every workload, one exit status */
        return run_check("lstm", omit) | run_check("gru", omit) | run_check("lstm_2layer", omit);
    if (strcmp(workload, "lstm") && strcmp(workload, "gru") && strcmp(workload, "lstm_2layer")) {
        fprintf(stderr, "onednn_ref: no workload \"%s\" (lstm, gru, lstm_2layer)\n", workload);
        return 2;
    }
    return check ? run_check(workload, omit) : run_bench(workload, threads, budget);
}
