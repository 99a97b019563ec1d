# bench/peers/workerd/config.capnp - workerd config of the benchmark peer.
# The scenario runs: workerd serve config.capnp --socket-fd http=FD
#   --directory-path do-storage=<temp dir>   (a socket it bound to port 0)
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .counterWorker),
    (name = "do-storage", disk = (path = "/tmp/lmz-wd-unset", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "main") ],
);

const counterWorker :Workerd.Worker = (
  modules = [ (name = "counter.js", esModule = embed "counter.js") ],
  compatibilityDate = "2025-09-01",
  durableObjectNamespaces = [
    (className = "Counter", uniqueKey = "lmz-bench-counter", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-storage"),
  bindings = [ (name = "COUNTER", durableObjectNamespace = "Counter") ],
);
