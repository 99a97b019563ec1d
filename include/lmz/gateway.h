/* lmz/gateway.h - hooks of the client gateway (LumenizeClientGateway).
 *
 * Browsers and Node.js clients join the mesh through a gateway actor of
 * their own (binding LUMENIZE_CLIENT_GATEWAY, instance "{sub}.{tabId}") on a
 * node's HTTP port. The gateway verifies the client's token, mints the
 * origin auth of its calls and relays mesh calls to it. An application may
 * refine that with three hooks, the C form of the original's subclass
 * overrides (onBeforeAccept, onBeforeCallToMesh, onBeforeCallToClient):
 *
 *   static int accept(void *data, const char *instance, const char *sub,
 *                     const lmz_value *payload, lmz_arena *a,
 *                     lmz_value **extra, struct lmz_gateway_reject *rej) {
 *     *extra = lmz_object(a);
 *     return lmz_object_setc(*extra, "role", lmz_cstring(a, "editor"));
 *   }
 *   static const struct lmz_gateway_hooks hooks = {.on_before_accept = accept};
 *   LMZ_EXPORT int lmz_module_init(lmz_registry *r) {
 *     return lmz_register_gateway_hooks(r, &hooks);
 *   }
 *
 * Unlike the original, where overriding onBeforeAccept replaces the identity
 * check, the gateway always checks first that the instance name is
 * "<sub>.<tabId>" (403 otherwise); the hook then runs on accepted identities.
 *
 * Hooks run on the node's loop thread, synchronously; they must not block.
 * Values they create go in the arena `a` they are given (valid until the
 * gateway has copied what it keeps). */
#ifndef LMZ_GATEWAY_PUBLIC_H
#define LMZ_GATEWAY_PUBLIC_H

#include "lmz/lmz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A connected client as the gateway verified it. */
struct lmz_gateway_conn_info {
  const char *sub;         /* the token's subject */
  const char *binding;     /* the gateway binding ("LUMENIZE_CLIENT_GATEWAY") */
  const char *instance;    /* "{sub}.{tabId}" */
  const lmz_value *claims; /* the verified token payload with the accept
                              hook's extra claims merged on top */
};

/* How on_before_accept refuses a connection: an HTTP answer. */
struct lmz_gateway_reject {
  int status;               /* 400..599; 0 = 403 */
  const char *content_type; /* NULL = text/plain */
  const char *body;         /* NUL-terminated; NULL = "Forbidden" */
};

/* A client's call on its way into the mesh, as on_before_call_to_mesh may
 * change it. The chain (callChain[0] is the client itself) is fixed. */
struct lmz_gateway_mesh_call {
  const char *call_id;  /* the client's callId */
  const char *binding;  /* callee */
  const char *instance; /* NULL for workers */
  const lmz_identity *call_chain;
  size_t call_chain_len;
  lmz_value *origin_auth; /* {sub, claims}: may be modified in place */
  lmz_value *state;       /* the client's state object: may be modified */
};

struct lmz_gateway_hooks {
  void *data; /* passed to every hook */
  /* A token was verified and the identity check passed. Return 0 to accept
   * (optionally setting *extra_claims to an object, in `a`, whose members
   * are merged over the token's claims), or fill *reject and return
   * non-zero to answer the upgrade with that response. */
  int (*on_before_accept)(void *data, const char *instance, const char *sub,
                          const lmz_value *payload, lmz_arena *a,
                          lmz_value **extra_claims,
                          struct lmz_gateway_reject *reject);
  /* Before a client's call enters the mesh. Return 0 to let it go (after
   * any change to call->state / call->origin_auth, values in `a`), or set
   * *error (any value in `a`, usually lmz_error()) and return non-zero: the
   * client gets it as the call's error. */
  int (*on_before_call_to_mesh)(void *data,
                                const struct lmz_gateway_conn_info *client,
                                struct lmz_gateway_mesh_call *call,
                                lmz_arena *a, lmz_value **error);
  /* Before a mesh call is relayed to the client (connected, or held during
   * the reconnect grace period: then `client` describes the last
   * connection). `chain` is the caller's context chain (the immediate
   * caller last). Return 0 to relay it, or set *error and return non-zero:
   * the caller gets that error. */
  int (*on_before_call_to_client)(void *data,
                                  const struct lmz_gateway_conn_info *client,
                                  const lmz_identity *chain, size_t chain_len,
                                  const lmz_value *state, lmz_arena *a,
                                  lmz_value **error);
};

/* Registers the hooks of the node's client gateway (from lmz_module_init;
 * `h` must stay valid while the module is loaded: a static table). One
 * module per node may register them. Returns 0, LMZ_EINVAL (NULL), LMZ_EEXIST
 * (another module registered hooks already). */
int lmz_register_gateway_hooks(lmz_registry *r,
                               const struct lmz_gateway_hooks *h);

#ifdef __cplusplus
}
#endif
#endif
