/* tests/lib/fakehttp.h - a tiny HTTP/1.1 server on the test's own loop.
 *
 * Binds 127.0.0.1 port 0 (the port is reported), reads one request per
 * connection (head up to 64 KiB, Content-Length body up to 4 MiB), asks the
 * test's handler what to answer, answers, closes. Because it runs on the
 * same loop as the client under test, a test runs the loop until its
 * condition holds (bounded by a deadline). Hostile clients are not its
 * concern: it serves the tests' own requests. */
#ifndef LMZ_TEST_FAKEHTTP_H
#define LMZ_TEST_FAKEHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct fakehttp fakehttp;

struct fakehttp_req {
  char method[16];
  char path[1024];
  const char *head; /* the whole request head, NUL-terminated */
  const uint8_t *body;
  size_t body_len;
};

struct fakehttp_reply {
  int status;            /* 0 = 200 */
  const char *headers;   /* extra raw lines, each ending in "\r\n" */
  const char *body;      /* NUL-terminated unless body_len */
  size_t body_len;
  size_t filler_len;     /* instead of body: this many 'x' bytes */
  uint64_t delay_ms;     /* answer after this long */
  bool hang;             /* never answer (the client must time out) */
  bool no_length;        /* no Content-Length: the body ends at close */
};

/* Fills `out` (zeroed before the call) for `req`. */
typedef void (*fakehttp_handler)(void *ud, const struct fakehttp_req *req,
                                 struct fakehttp_reply *out);

int fakehttp_start(uv_loop_t *loop, fakehttp_handler h, void *ud,
                   fakehttp **out, int *port);
/* The values of every request header named `name` (any case), joined
 * with "|" into out[cap] (truncated to fit); returns how many there are. */
size_t fakehttp_header(const struct fakehttp_req *q, const char *name, char *out,
                       size_t cap);
/* Requests fully received so far. */
unsigned fakehttp_count(const fakehttp *s);
/* Closes the listener and every connection; frees on the loop (run it
 * until uv_loop_alive says nothing is left). */
void fakehttp_close(fakehttp *s);

#endif
