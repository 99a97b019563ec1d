/* core/value.h - the value model as the rest of lmz sees it: the public API
 * (lmz/value.h) plus nothing else. Internal layout is in core/value_int.h,
 * for core's own files (codecs) only. */
#ifndef LMZ_CORE_VALUE_H
#define LMZ_CORE_VALUE_H
#include "lmz/value.h"
#endif
