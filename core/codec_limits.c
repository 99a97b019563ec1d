/* core/codec_limits.c - default decoder limits shared by both codecs. */
#include "core/codec.h"

void lmz_codec_limits_default(struct lmz_codec_limits *l) {
  l->max_depth = 512;
  l->max_input = (size_t)64 << 20;
  l->max_nodes = (size_t)4 << 20;
  l->max_memory = 0; /* derived from the input size by each decoder */
}
