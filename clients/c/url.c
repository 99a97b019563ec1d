/* clients/c/url.c - where to connect: "ws://HOST:PORT" and friends, and the
 * character checks for what goes into the upgrade request.
 *
 * Failure modes: every malformed URL (empty host, port out of 1..65535,
 * junk after the port, an unsupported scheme, wss://) is LMZ_EINVAL with a
 * message; nothing is allocated. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clients/c/lmzc_int.h"

lmz_log_ns lmz__cc_log = LMZ_LOG_NS("lmz.client");

static int bad(char *errmsg, const char *what, const char *url) {
  if (errmsg)
    lmz__errmsg_printf(errmsg, "url '%.80s': %s", url, what);
  return LMZ_EINVAL;
}

/* Skips a scheme we speak; refuses the TLS ones (a proxy does TLS). */
static const char *skip_scheme(const char *url, char *errmsg, int *rv) {
  static const char *const plain[] = {"ws://", "http://"};
  static const char *const tls[] = {"wss://", "https://"};
  for (size_t i = 0; i < 2; i++) {
    if (!strncasecmp(url, tls[i], strlen(tls[i]))) {
      *rv = bad(errmsg, "TLS is not supported (use a TLS proxy)", url);
      return NULL;
    }
    if (!strncasecmp(url, plain[i], strlen(plain[i])))
      return url + strlen(plain[i]);
  }
  if (strstr(url, "://")) {
    *rv = bad(errmsg, "unknown scheme", url);
    return NULL;
  }
  return url;
}

static int parse_port(const char *p, int *port) {
  long v = 0;
  if (!*p)
    return -1;
  for (; *p && *p != '/'; p++) {
    if (*p < '0' || *p > '9' || v > 65535)
      return -1;
    v = v * 10 + (*p - '0');
  }
  if ((*p == '/' && p[1]) || v < 1 || v > 65535)
    return -1;
  *port = (int)v;
  return 0;
}

int lmz__cc_url_parse(const char *url, struct lmz__cc_addr *out, char *errmsg) {
  int rv = 0;
  if (!url)
    return bad(errmsg, "missing", "");
  const char *p = skip_scheme(url, errmsg, &rv);
  if (!p)
    return rv;
  const char *host = p, *hend;
  if (*p == '[') { /* RFC 3986 IP-literal */
    host = p + 1;
    hend = strchr(host, ']');
    if (!hend)
      return bad(errmsg, "unterminated '['", url);
    p = hend + 1;
  } else {
    hend = p + strcspn(p, ":/");
    p = hend;
  }
  size_t hlen = (size_t)(hend - host);
  if (hlen == 0 || hlen > LMZ__CC_HOST_MAX)
    return bad(errmsg, "bad host", url);
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  if (!lmz__cc_segment_ok(out->host, LMZ__CC_HOST_MAX) && !strchr(out->host, ':'))
    return bad(errmsg, "bad host characters", url);
  out->port = 80;
  if (*p == ':' && parse_port(p + 1, &out->port))
    return bad(errmsg, "bad port", url);
  if (*p != ':' && *p && strcmp(p, "/"))
    return bad(errmsg, "unexpected path", url);
  bool v6 = strchr(out->host, ':') != NULL;
  snprintf(out->hostport, sizeof out->hostport, "%s%s%s:%d", v6 ? "[" : "",
           out->host, v6 ? "]" : "", out->port);
  return 0;
}

int lmz__cc_numeric(const struct lmz__cc_addr *a, struct sockaddr_storage *sa) {
  memset(sa, 0, sizeof *sa);
  if (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)sa) == 0)
    return 1;
  if (uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)sa) == 0)
    return 1;
  return 0;
}

bool lmz__cc_segment_ok(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max)
    return false;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9');
    if (!alnum && !strchr("-._~!$&'()*+,;=:@", ch))
      return false;
  }
  return true;
}

bool lmz__cc_token_ok(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max)
    return false;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch))
      return false;
  }
  return true;
}
