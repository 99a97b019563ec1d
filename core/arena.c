/* core/arena.c - chunked bump allocator behind every lmz_value graph.
 *
 * Happy path: lmz_arena_new() mallocs the arena header together with its first
 * 8 KiB chunk; lmz_arena_alloc() bumps a pointer inside the current chunk
 * (8-byte aligned). When a chunk is full a new one is malloc'd, each twice the
 * previous (capped at LMZ__CHUNK_MAX) so the number of mallocs stays
 * logarithmic; a request bigger than a quarter of the next chunk gets a chunk
 * of its own and leaves the current one in place for the small requests that
 * follow. lmz_arena_reset() rewinds the first chunk and keeps the biggest
 * regular chunk as a spare for the next overflow (so a hot decode loop on a
 * reset arena stops calling malloc and stops faulting fresh pages in); every
 * other chunk is freed. lmz_arena_free() frees everything.
 *
 * Accounting: `used` counts the bytes handed out (rounded up to 8), not chunk
 * slack, so a limit is exact and independent of chunk sizes. The real
 * footprint is at most about twice `used` plus one chunk.
 *
 * Failure modes:
 *  1. malloc fails -> NULL (callers turn it into LMZ_ENOMEM).
 *  2. The request would take `used` past the limit -> NULL, nothing changes.
 *  3. Size overflow (n close to SIZE_MAX) -> NULL. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/value_int.h"

#define LMZ__CHUNK_FIRST (8u * 1024)
#define LMZ__CHUNK_MAX (1024u * 1024)
#define LMZ__ALIGN 8u

struct chunk {
  struct chunk *next;
  size_t size; /* payload bytes */
  bool own;    /* holds a single big allocation */
  /* payload follows, aligned to 16 by the struct padding below */
  max_align_t pad[];
};

struct lmz_arena {
  char *ptr;           /* next free byte of the current chunk */
  char *end;           /* end of the current chunk */
  struct chunk *extra; /* chunks malloc'd after the first, newest first */
  struct chunk *spare; /* kept by reset, used by the next overflow */
  size_t used;         /* bytes handed out since new/reset */
  size_t limit;        /* 0 = unlimited */
  size_t next_size;    /* payload size of the next regular chunk */
  max_align_t first[]; /* the first chunk (LMZ__CHUNK_FIRST bytes) */
};

lmz_arena *lmz_arena_new(void) {
  lmz_arena *a = malloc(sizeof(*a) + LMZ__CHUNK_FIRST);
  if (!a)
    return NULL;
  a->ptr = (char *)a->first;
  a->end = a->ptr + LMZ__CHUNK_FIRST;
  a->extra = NULL;
  a->spare = NULL;
  a->used = 0;
  a->limit = 0;
  a->next_size = LMZ__CHUNK_FIRST * 2;
  return a;
}

/* Frees the extra chunks except `keep`. */
static void free_extra(lmz_arena *a, struct chunk *keep) {
  struct chunk *c = a->extra;
  while (c) {
    struct chunk *next = c->next;
    if (c != keep)
      free(c);
    c = next;
  }
  a->extra = NULL;
}

void lmz_arena_free(lmz_arena *a) {
  if (!a)
    return;
  free_extra(a, NULL);
  free(a->spare);
  free(a);
}

void lmz_arena_reset(lmz_arena *a) {
  struct chunk *keep = a->spare;
  for (struct chunk *c = a->extra; c; c = c->next)
    if (!c->own && c->size <= LMZ__CHUNK_MAX && (!keep || c->size > keep->size))
      keep = c;
  if (a->spare && a->spare != keep)
    free(a->spare);
  free_extra(a, keep);
  a->spare = keep;
  a->ptr = (char *)a->first;
  a->end = a->ptr + LMZ__CHUNK_FIRST;
  a->used = 0;
  a->next_size = LMZ__CHUNK_FIRST * 2;
}

void lmz_arena_set_limit(lmz_arena *a, size_t max_bytes) {
  a->limit = max_bytes;
}

size_t lmz__arena_limit(const lmz_arena *a) { return a->limit; }

size_t lmz_arena_used(const lmz_arena *a) { return a->used; }

/* Makes c the current chunk with n bytes taken. */
static void *use_chunk(lmz_arena *a, struct chunk *c, size_t n) {
  c->next = a->extra;
  a->extra = c;
  char *p = (char *)c->pad;
  if (!c->own) {
    a->ptr = p + n;
    a->end = p + c->size;
    if (a->next_size <= c->size) /* after a spare: grow past it */
      a->next_size = c->size < LMZ__CHUNK_MAX ? c->size * 2 : LMZ__CHUNK_MAX;
  }
  a->used += n;
  return p;
}

/* Slow path: the current chunk cannot hold `n` (already rounded) bytes. */
static void *alloc_slow(lmz_arena *a, size_t n) {
  struct chunk *s = a->spare;
  if (s && n <= s->size / 4) {
    a->spare = NULL;
    return use_chunk(a, s, n);
  }
  size_t size = a->next_size;
  bool own = n > size / 4; /* big: a chunk of its own, keep the current one */
  if (own)
    size = n;
  if (size > SIZE_MAX - sizeof(struct chunk))
    return NULL;
  struct chunk *c = malloc(sizeof(struct chunk) + size);
  if (!c)
    return NULL;
  c->size = size;
  c->own = own;
  return use_chunk(a, c, n);
}

void *lmz_arena_alloc(lmz_arena *a, size_t n) {
  if (n > SIZE_MAX - LMZ__ALIGN)
    return NULL;
  n = (n + LMZ__ALIGN - 1) & ~(size_t)(LMZ__ALIGN - 1);
  if (a->limit && (n > a->limit || a->used > a->limit - n))
    return NULL;
  if ((size_t)(a->end - a->ptr) >= n) {
    void *p = a->ptr;
    a->ptr += n;
    a->used += n;
    return p;
  }
  return alloc_slow(a, n);
}

char *lmz_arena_strndup(lmz_arena *a, const char *s, size_t n) {
  if (n == SIZE_MAX)
    return NULL;
  char *p = lmz_arena_alloc(a, n + 1);
  if (!p)
    return NULL;
  if (n)
    memcpy(p, s, n);
  p[n] = 0;
  return p;
}
