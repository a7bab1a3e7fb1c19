/* ops/attrs.h: the attribute schemas of the built-in ops (ops/attrs.c).
 * The attribute structs themselves are public (mnemo_plugin.h); a record
 * names its schema with MN__FIELDS(struct type). */
#ifndef MN_OPS_ATTRS_H
#define MN_OPS_ATTRS_H

#include "mnemo.h"
#include "mnemo_plugin.h"

#define MN__FIELDS(T) .attr_fields = mn__##T##_fields
#define MN__SCHEMA(X)                                                                    \
    X(mn_scale_attrs) X(mn_matmul_attrs) X(mn_permute_attrs) X(mn_shape_attrs)           \
    X(mn_reduce_attrs) X(mn_axis_attrs) X(mn_ce_attrs) X(mn_mse_attrs) X(mn_slice_attrs) \
    X(mn_slice_back_attrs) X(mn_cat_attrs) X(mn_scatter_attrs) X(mn_squeeze_attrs)       \
    X(mn_act_attrs) X(mn_axis_reduce_attrs) X(mn_var_attrs) X(mn_ln_attrs)               \
    X(mn_dropout_attrs) X(mn_random_attrs) X(mn_fill_attrs) X(mn_arange_attrs)           \
    X(mn_one_hot_attrs) X(mn_cast_attrs) X(mn_loss_attrs) X(mn_attention_attrs)
#define MN__SCHEMA_DECL(T) extern const mn_attr_field mn__##T##_fields[];
MN__SCHEMA(MN__SCHEMA_DECL)
#undef MN__SCHEMA_DECL

/* Attributes compared and hashed field by field (bytes when the op has no schema). */
bool     mn__attrs_equal(const mn_op_def *op, const void *a, const void *b);
uint64_t mn__attrs_hash(const mn_op_def *op, const void *a, uint64_t h);
/* "name=value name=value" by the schema (or the op's attr_str); "" if none. */
void     mn__attrs_str(const mn_op_def *op, const void *a, char *buf, size_t n);

#endif
