/* net/allow.c - the egress allow-list match (net/fetch.h), pure logic.
 *
 * Entries: "*" (every host), "*.example.com" (any subdomain of
 * example.com, not example.com itself), or an exact host. Host names are
 * compared without case (RFC 3986 3.2.2: the host is case-insensitive). A
 * trailing dot on the host ("example.com.") is the same name and is
 * ignored, so it cannot slip past an exact entry. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "net/fetch.h"

static size_t host_len(const char *host) {
  size_t n = strlen(host);
  if (n > 1 && host[n - 1] == '.')
    n--;
  return n;
}

static bool entry_matches(const char *e, const char *host, size_t hl) {
  size_t el = strlen(e);
  if (el == 1 && e[0] == '*')
    return true;
  if (el > 2 && e[0] == '*' && e[1] == '.') {
    size_t sl = el - 1; /* ".example.com" */
    return hl > sl && strncasecmp(host + hl - sl, e + 1, sl) == 0;
  }
  return el == hl && strncasecmp(host, e, hl) == 0;
}

bool lmz_net_host_allowed(const char *const *allow, size_t n_allow,
                          const char *host) {
  if (!host || !*host)
    return false;
  size_t hl = host_len(host);
  for (size_t i = 0; i < n_allow; i++)
    if (allow[i] && entry_matches(allow[i], host, hl))
      return true;
  return false;
}
