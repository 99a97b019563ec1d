/* tests/lib/fakelisten.h - the listening socket of the tests' fake servers
 * (fakehttp.c, fakesmtp.c): 127.0.0.1, port 0 (the kernel picks; the test
 * reads it back), so parallel tests never race for a port. */
#ifndef LMZ_TESTS_FAKELISTEN_H
#define LMZ_TESTS_FAKELISTEN_H

#include <uv.h>

/* Initializes `l` on `loop` (always: on error the caller still uv_closes
 * it), binds and listens with `cb`, and sets *port. Returns 0 or a libuv
 * error. */
int fake_listen(uv_loop_t *loop, uv_tcp_t *l, uv_connection_cb cb, int *port);

/* A connection's read buffer for its alloc_cb: *buf holds len bytes and has
 * room for *cap + 1 (a NUL); grown (doubling, from 128 KiB) while less than
 * 64 KiB are free. Sets *b to the free part, or to an empty buffer when out
 * of memory (libuv then reports UV_ENOBUFS). */
void fake_read_buf(char **buf, size_t len, size_t *cap, uv_buf_t *b);

#endif
