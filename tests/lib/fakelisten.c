/* tests/lib/fakelisten.c - see fakelisten.h. */
#include "lib/fakelisten.h"

#include <arpa/inet.h>
#include <stdlib.h>

int fake_listen(uv_loop_t *loop, uv_tcp_t *l, uv_connection_cb cb, int *port) {
  uv_tcp_init(loop, l);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  int rv = uv_tcp_bind(l, (struct sockaddr *)&a, 0);
  if (!rv)
    rv = uv_listen((uv_stream_t *)l, 64, cb);
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  if (!rv)
    rv = uv_tcp_getsockname(l, (struct sockaddr *)&ss, &sl);
  if (!rv)
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return rv;
}

void fake_read_buf(char **buf, size_t len, size_t *cap, uv_buf_t *b) {
  if (*cap - len < 65536) {
    size_t ncap = *cap ? *cap * 2 : 131072;
    char *nb = realloc(*buf, ncap + 1);
    if (!nb) {
      *b = uv_buf_init(NULL, 0);
      return;
    }
    *buf = nb;
    *cap = ncap;
  }
  *b = uv_buf_init(*buf + len, (unsigned)(*cap - len));
}
