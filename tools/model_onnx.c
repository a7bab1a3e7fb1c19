/* tools/model_onnx.c: the model of `mnemo train --onnx` and `mnemo graph
 * --onnx`: an ONNX model with one input and logits out, fed by --model's
 * data reader (its input bound to the batch's shape and named "x"), with
 * the same targets "y" and mean cross-entropy as the built-in classifiers,
 * so checkpoints, resume, validation and eval work unchanged. */
#include "train.h"
#include <string.h>

/* What --model's reader feeds: x's shape and dtype, the targets' shape, and
 * the fewest classes the logits need (LM: the vocabulary). */
typedef struct { mn_shape x, y; mn_dtype dtype; int64_t min_classes; const char *what; } onnx_feed;

static bool feed_of(const mn_train_cfg *c, int64_t vocab, onnx_feed *f)
{
    int64_t B = c->batch, T = c->seq;
    if (!strcmp(c->model, "mlp")) *f = (onnx_feed){ MN_SHAPE(B, 784), MN_SHAPE(B), MN_F32, 10, "float pixels [batch, 784]" };
    else if (!strcmp(c->model, "transformer")) *f = (onnx_feed){ MN_SHAPE(B, T), MN_SHAPE(B, T), MN_I32, vocab, "token ids [batch, seq]" };
    else if (mn_cfg_is_lm(c)) *f = (onnx_feed){ MN_SHAPE(T, B), MN_SHAPE(T, B), MN_I32, vocab, "token ids [seq, batch]" };
    else if (!strcmp(c->model, "tagger")) *f = (onnx_feed){ MN_SHAPE(T, B), MN_SHAPE(T, B), MN_I32, 12, "word ids [seq, batch]" };
    else return false;
    return true;
}

/* Checks the imported model against the reader; fails g naming what differs. */
static bool onnx_fits(mn_graph *g, const mn_train_cfg *c, mn_onnx *o, const onnx_feed *f)
{
    char a[64], b[64];
    if (mn_onnx_input_count(o) != 1 || mn_onnx_output_count(o) < 1 || !mn_onnx_input(o, 0))
        return mn_graph_fail(g, MN_ERR_INVALID, "--onnx %s: the model has %d inputs and %d outputs (one input, logits first)", c->onnx,
                             mn_onnx_input_count(o), mn_onnx_output_count(o)), false;
    if (mn_node_dtype(mn_onnx_input(o, 0)) != f->dtype)
        return mn_graph_fail(g, MN_ERR_DTYPE, "--onnx %s: input \"%s\" is %s, --model %s feeds %s", c->onnx, mn_onnx_input_name(o, 0),
                             mn_dtype_name(mn_node_dtype(mn_onnx_input(o, 0))), c->model, f->what), false;
    mn_shape ls = mn_node_shape(mn_onnx_output(o, 0));
    int64_t K = ls.ndim ? ls.d[ls.ndim - 1] : 0, rows = K ? mn_shape_numel(ls) / K : 0;
    if (mn_node_dtype(mn_onnx_output(o, 0)) != MN_F32 || rows != mn_shape_numel(f->y))
        return mn_graph_fail(g, MN_ERR_SHAPE, "--onnx %s: output \"%s\" %s is not logits for the %lld targets of %s %s", c->onnx,
                             mn_onnx_output_name(o, 0), mn_shape_str(ls, a, sizeof a), (long long)mn_shape_numel(f->y),
                             c->model, mn_shape_str(f->y, b, sizeof b)), false;
    if (K < f->min_classes)
        return mn_graph_fail(g, MN_ERR_SHAPE, "--onnx %s: %lld classes, the data has %lld", c->onnx, (long long)K,
                             (long long)f->min_classes), false;
    return true;
}

/* The ONNX model's one input bound to the reader's shape and named "x",
 * targets "y", mean cross-entropy over its first output read as [rows,
 * classes] in the targets' order. */
mn_model_graph mn_model_onnx(mn_graph *g, const mn_train_cfg *c, int64_t vocab)
{
    mn_model_graph m = { 0 };
    onnx_feed f;
    if (!feed_of(c, vocab, &f)) {
        mn_graph_fail(g, MN_ERR_INVALID, "--onnx: --model %s has no reader for a classifier (lstm, gru, rnn, transformer, mlp, tagger)", c->model);
        return m;
    }
    mn_tensor *shape = mn_tensor_new(f.dtype, f.x);
    mn_onnx_bind bind = { NULL, shape, false };                /* NULL: the model's first input, whatever its name */
    mn_onnx *o = shape ? mn_onnx_import(g, c->onnx, &(mn_onnx_opts){ .binds = &bind, .nbinds = 1 }) : NULL;
    mn_tensor_free(shape);
    if (!o || !onnx_fits(g, c, o, &f)) {
        mn_onnx_free(o);
        return m;
    }
    mn_node_set_name(mn_onnx_input(o, 0), "x");
    mn_node *logits = mn_onnx_output(o, 0);
    mn_shape ls = mn_node_shape(logits);
    m.classes = ls.d[ls.ndim - 1];
    m.logits = mn_reshape(g, logits, MN_SHAPE(mn_shape_numel(f.y), m.classes));
    m.targets = mn_reshape(g, mn_input(g, "y", MN_I32, f.y), MN_SHAPE(mn_shape_numel(f.y)));
    m.loss = mn_cross_entropy(g, m.logits, m.targets);
    mn_onnx_free(o);
    return m;
}
