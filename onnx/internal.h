/* onnx/internal.h: what the ONNX importer's files share (onnx/import.c
 * reads the model and walks its nodes, onnx/table.c maps each ONNX op to
 * registry ops, onnx/rnn.c composes LSTM/GRU/RNN, onnx/tensor.c converts
 * TensorProtos). Invariant: every value of the ONNX graph is one ox_val;
 * `known` holds its contents when they are fixed at import time. */
#ifndef MN_ONNX_INTERNAL_H
#define MN_ONNX_INTERNAL_H

#include "mnemo.h"
#include "onnx.pb-c.h"

/* ONNX element types mnemo holds: float as f32, integers and bool as i32
 * (the narrow ones, uint8 to uint64, keep their type in ox_val.elem). */
enum { OX_FLOAT = 1, OX_UINT8 = 2, OX_INT8 = 3, OX_UINT16 = 4, OX_INT16 = 5, OX_INT32 = 6, OX_INT64 = 7, OX_BOOL = 9,
       OX_FLOAT16 = 10, OX_DOUBLE = 11, OX_UINT32 = 12, OX_UINT64 = 13, OX_BFLOAT16 = 16 };

/* The newest default-domain opset read. Opsets 19 to 21 changed the ops of
 * the table only by element types (new ones are refused as any unknown
 * type), AveragePool's dilations and Pad's wrap mode (both read at every
 * opset); opset 22 is refused until its changes are read. */
enum { OX_MAX_OPSET = 21 };

typedef struct {
    char *name;
    mn_node *node;        /* NULL for an omitted optional input */
    mn_tensor *known;     /* value fixed at import (initializer, Constant, folded), or NULL */
    bool trainable;       /* a parameter: never folded into a constant */
    int elem;             /* ONNX element type of the value */
} ox_val;

typedef struct ox_ctx ox_ctx;
/* A converter builds the mnemo nodes of one ONNX node into g. in[i] may be
 * NULL (omitted optional input). It sets out[k] (and optionally out_known[k],
 * out_elem[k]: 0 means as input 0). On error: fail g naming what is wrong
 * (the importer prefixes node name and op) and return the code. */
typedef mn_status (*ox_conv)(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin,
                             mn_node **out, mn_tensor **out_known, int *out_elem, int nout);

typedef struct {
    const char *onnx;     /* ONNX op_type (default domain) */
    const char *ops;      /* the mnemo ops it becomes, for docs/onnx.md */
    ox_conv conv;
    const char *note;     /* what is not supported */
    const char *domain;   /* NULL: the default domain (ai.onnx) */
} ox_entry;

extern const ox_entry mn__ox_table[];
extern const int mn__ox_table_count;
const ox_entry *mn__ox_find(const char *op_type);

struct ox_ctx {
    int opset;
    const ox_entry *entry;    /* the table row being converted */
};

/* Attributes of a node by name. */
const Onnx__AttributeProto *mn__ox_attr(const Onnx__NodeProto *n, const char *name);
int64_t mn__ox_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
float   mn__ox_attr_float(const Onnx__NodeProto *n, const char *name, float def);
/* The ints of an attribute (count in *len; NULL and 0 if absent). */
const int64_t *mn__ox_attr_ints(const Onnx__NodeProto *n, const char *name, size_t *len);
/* A string attribute copied into buf ("" if absent). */
const char *mn__ox_attr_str(const Onnx__NodeProto *n, const char *name, char *buf, size_t len);

/* TensorProto -> tensor (f32 or i32; int64 values must fit i32). On error
 * NULL with a message in msg. */
mn_tensor *mn__ox_tensor(const Onnx__TensorProto *t, char *msg, size_t msglen);
bool mn__ox_elem_supported(int elem);
/* uint8, int8, uint16, int16, uint32, uint64: held as i32. */
bool mn__ox_elem_narrow(int elem);
const char *mn__ox_elem_name(int elem);
/* Whether the table's op keeps exact ONNX semantics on a narrow integer
 * input 0 (onnx/table.c: moves, selections, comparisons, wrapped Add/Sub/Mul/Div). */
bool mn__ox_narrow_ok(const ox_entry *e);
/* The element type a tensor of `elem` holds once read (double, float16, bfloat16: float). */
int mn__ox_stored_elem(int elem);


/* Conv, ConvTranspose, MaxPool/AveragePool, Pad, TopK (onnx/window.c). One
 * converter per table row: no converter reads the op name. */
#define OX_CONV_DECL(fn) mn_status fn(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, \
                                      mn_node **out, mn_tensor **out_known, int *out_elem, int nout);
OX_CONV_DECL(mn__ox_conv)
OX_CONV_DECL(mn__ox_conv_transpose)
OX_CONV_DECL(mn__ox_max_pool)
OX_CONV_DECL(mn__ox_average_pool)
/* LSTM, GRU, RNN (onnx/rnn.c). */
OX_CONV_DECL(mn__ox_lstm)
OX_CONV_DECL(mn__ox_gru)
OX_CONV_DECL(mn__ox_rnn)
OX_CONV_DECL(mn__ox_pad)
OX_CONV_DECL(mn__ox_topk)

#endif
