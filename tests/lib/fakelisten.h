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

#endif
