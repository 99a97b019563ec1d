/* tests/lib/fakesmtp.h - a tiny SMTP server (RFC 5321 subset) on the test's
 * own loop: 127.0.0.1 port 0, EHLO/HELO, AUTH (accepted), MAIL, RCPT, DATA
 * (dot-unstuffed), RSET, NOOP, QUIT. No STARTTLS (it does not offer it).
 * Records the last message; can refuse a recipient or the data, or never
 * greet (the client must time out). For tests of the client only. */
#ifndef LMZ_TEST_FAKESMTP_H
#define LMZ_TEST_FAKESMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct fakesmtp fakesmtp;

struct fakesmtp_opts {
  bool hang;          /* accept, never greet */
  int rcpt_code;      /* 0 = 250; e.g. 550 refuses every recipient */
  int data_code;      /* 0 = 250; e.g. 554 refuses the message */
};

int fakesmtp_start(uv_loop_t *loop, const struct fakesmtp_opts *o,
                   fakesmtp **out, int *port);
unsigned fakesmtp_connections(const fakesmtp *s);
unsigned fakesmtp_messages(const fakesmtp *s);   /* accepted with 250 */
const char *fakesmtp_mail_from(const fakesmtp *s); /* last "MAIL FROM:" arg */
const char *fakesmtp_rcpt(const fakesmtp *s);      /* last "RCPT TO:" arg */
const char *fakesmtp_data(const fakesmtp *s);      /* last message, or "" */
bool fakesmtp_saw_auth(const fakesmtp *s);
void fakesmtp_close(fakesmtp *s);

#endif
