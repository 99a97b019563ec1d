/* core/hash.h - the two byte-string hashes, and which one to use where.
 *
 * lmz_hash_seeded: SipHash-2-4 (libsodium crypto_shorthash) under a key drawn
 *   at random once per process. Use it for in-memory tables whose keys come
 *   from clients or peers (actor names, client instances, call ids): without
 *   the key nobody can compute a set of names that collide, so nobody can
 *   turn O(1) lookups into O(n) scans (hash flooding; Redis seeds its dict
 *   the same way). Its values differ between processes and runs: never
 *   persist them, send them, or let them decide anything replicated.
 *
 * lmz_hash_stable: a fixed FNV-1a variant, the same on every node, run and
 *   build. Use it only where bytes must hash alike across processes
 *   (checksums of snapshots and other persisted or replicated formats).
 *   Collisions are easy to compute, so never key a table with it.
 *
 * Threading: both are thread-safe. The first call of lmz_hash_seeded draws
 * the key (once, under uv_once; it calls sodium_init(), which is idempotent,
 * so callers need not have initialised libsodium). */
#ifndef LMZ_CORE_HASH_H
#define LMZ_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t lmz_hash_seeded(const void *p, size_t n);
uint64_t lmz_hash_stable(const void *p, size_t n);

#endif
