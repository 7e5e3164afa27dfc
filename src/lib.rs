//! ldawt: a single binary that turns any set of machines into a self-organizing peer-to-peer
//! swarm that downloads huge URL datasets (parquet lists of image URLs with a class column) into
//! per-shard archives.
//!
//! # Layout
//!
//! - `model`: pure logic (split plans, lease book, bidding, naming) — time is an argument.
//! - `input`: streaming readers for parquet/CSV URL lists (`UrlRow`).
//! - `engine`: one shard → one archive + per-row results (`ldawt download`, swarm workers),
//!   built on `fetch` (HTTP client, per-host pacing; its `FetchConfig` is embedded in
//!   `EngineConfig`), `archive` (streaming tar / tar.gz writer, `Compression`, archive-name rules) and
//!   `results` (`RowResult`/`ShardReport`, per-row results parquet, overview JSON,
//!   `report.html`, and the merge of a swarm dataset's shards into its `results.parquet`),
//!   which never import `engine` (`scripts/module-cycles.sh` checks the import
//!   graph); `size` estimates bytes with HEAD / ranged GETs; `report` renders progress and
//!   summaries for people.
//! - `seed`, `store`, `coordinator`, `worker`, `node`: the swarm — seeding a dataset into
//!   shards, the redb lease database (versioned records), the seeder's lease logic (a sans-IO
//!   state whose handlers return effects, carried out off its actor by an executor), the
//!   worker loop, and the node runtime that wires them to `net` as named tasks
//!   (`node::dispatch`, the one owner of the peer table; `announcer`; `status_publisher`), on
//!   the clock its config gives; `verify` checks a delivered shard before the seeder accepts it.
//! - `split`, `reconstruct`, `listing`, `webdav`, `slurm`, `monitor`: LDAWT's toolbox.
//! - `protocol`: versioned wire and control-endpoint types: `control` (worker ↔ seeder
//!   requests and refusals), `transfer` (archive stream header), `gossip` (adverts), `codec`
//!   (the postcard envelope), `settings` (a dataset's engine settings), `status` (`/status`).
//! - `net`: the libp2p transport (gossip, mDNS, control and archive-transfer streams).
//! - `status_server`, `status_client`, `peers_view`: the node's HTTP control endpoint (with
//!   the live dashboard page, `dashboard.html`), its client and the `ldawt peers` tables.
//! - `fixture`: the deterministic, misbehaving HTTP server of the tests, benchmarks and
//!   `ldawt demo`. The measurement tool `transfer-bench` is not in `ldawt`: it is the
//!   `ldawt-dev` binary (`src/bin/ldawt-dev/`, feature `dev-tools`, built by `cargo test`).
//! - `layout`: the disk layout — `DataDir` (a node's keys, lease database, seeded rows,
//!   worker scratch) and `OutDir` (a seeder's stored shards, merged results, staging area),
//!   one method per path — and how files reach the disk (`write_atomic`, `persist`, `.part`
//!   names, free space).
//! - `commands`: one file per subcommand; command-line glue only. Their stdout lines go
//!   through `report::say!` (safe on a closed pipe); stop signals through `signals`; LDAWT's
//!   JSON config files (`--config` of `download` and `node`) through `commands::config`.
//! - `telemetry`, `exit`: logging setup and exit codes (the command line is `commands::cli`).

pub mod archive;
pub mod commands;
pub mod coordinator;
pub mod engine;
pub mod exit;
pub mod fetch;
pub mod fixture;
pub mod input;
pub mod layout;
pub mod listing;
pub mod model;
pub mod monitor;
pub mod net;
pub mod node;
pub mod peers_view;
pub mod protocol;
pub mod reconstruct;
pub mod report;
pub mod results;
pub mod seed;
pub mod signals;
pub mod size;
pub mod slurm;
pub mod split;
pub mod status_client;
pub mod status_server;
pub mod store;
pub mod telemetry;
pub mod verify;
pub mod webdav;
pub mod worker;
