//! The Kafka path end to end: `sync --via kafka` publishing into librdkafka's mock cluster,
//! `my2pg apply` workers consuming into the real PostgreSQL of the harness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use my2pg::harness::{self, TestDb};
use my2pg::sync::{self, Exit, SyncOptions};
use rand::Rng as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer as _};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use sink::kafka::KafkaMode;

fn kafka_config(db: &TestDb, brokers: &str) -> my2pg::config::Config {
    let mut cfg = sync_config(db);
    cfg.kafka.brokers = brokers.to_owned();
    cfg.kafka.topic_prefix = format!("t_{}", db.name);
    cfg.kafka.partitions = 4;
    cfg.kafka.group = format!("apply_{}", db.name);
    cfg.kafka.client = client_settings();
    cfg.sync.heartbeat_interval_ms = 200;
    cfg
}

/// A dead worker's partitions move after the session timeout: short in tests.
fn client_settings() -> std::collections::BTreeMap<String, String> {
    [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "300"),
        ("transaction.timeout.ms", "20000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The same settings as a config file, for `my2pg apply` child processes.
fn config_file(db: &TestDb, cfg: &my2pg::config::Config) -> tempfile::NamedTempFile {
    let mut client = String::new();
    for (k, v) in &cfg.kafka.client {
        client.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    let text = format!(
        "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[tables]\ndatabases = [\"{}\"]\n\
         [sync]\nheartbeat_table = \"{}\"\nheartbeat_interval_ms = {}\nbatch_rows = 500\n\
         [kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = {}\ngroup = \"{}\"\nmode = \"{}\"\n[kafka.client]\n{client}",
        db.mysql_url,
        db.pg_url,
        db.name,
        cfg.sync.heartbeat_table,
        cfg.sync.heartbeat_interval_ms,
        cfg.kafka.brokers,
        cfg.kafka.topic_prefix,
        cfg.kafka.partitions,
        cfg.kafka.group,
        match cfg.kafka.mode {
            KafkaMode::PerTable => "per_table",
            KafkaMode::Transactional => "transactional",
        },
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

/// A worker process, killed when the test ends (even by a panic).
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(config: &std::path::Path) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_my2pg"))
            .args(["--config", config.to_str().unwrap()])
            .args(["apply", "--from", "kafka", "--listen", "127.0.0.1:0"])
            .env(
                "RUST_LOG",
                std::env::var("MY2PG_TEST_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

async fn pg(db: &TestDb) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// Applied events per (topic, partition) as `my2pg.kafka_offsets` counts them.
async fn applied(pg: &tokio_postgres::Client, group: &str) -> HashMap<(String, i32), (i64, i64)> {
    pg.query(
        "SELECT topic, partition, next_offset, applied_events FROM my2pg.kafka_offsets WHERE consumer_group = $1",
        &[&group],
    )
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
            .collect()
    })
    .unwrap_or_default()
}

/// Committed messages per (topic, partition), read with `read_committed` to the end.
fn committed_messages(brokers: &str, topics: &[String]) -> HashMap<(String, i32), i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "my2pg-test-counter")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for t in topics {
        let md = c.fetch_metadata(Some(t), Duration::from_secs(10)).unwrap();
        for p in md.topics()[0].partitions() {
            let (_, high) = c
                .fetch_watermarks(t, p.id(), Duration::from_secs(10))
                .unwrap();
            ends.insert((t.clone(), p.id()), high);
            tpl.add_partition_offset(t, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let mut counts: HashMap<(String, i32), i64> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            *counts
                .entry((m.topic().to_owned(), m.partition()))
                .or_default() += 1;
        }
        let pos = c.position().unwrap();
        let done = ends.iter().all(|((t, p), high)| {
            pos.find_partition(t, *p)
                .and_then(|e| e.offset().to_raw())
                .is_some_and(|o| o >= *high)
                || *high == 0
        });
        if done {
            return counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "could not read the topics to their end"
        );
    }
}

/// Waits until the workers applied more than `events` messages over at least `partitions`
/// partitions.
async fn wait_applying(
    pg: &tokio_postgres::Client,
    group: &str,
    events: i64,
    partitions: usize,
    publisher: &mut Publishing,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        publishing(publisher).await;
        let got = applied(pg, group).await;
        let n: i64 = got.values().map(|v| v.1).sum();
        if n > events && got.len() >= partitions {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not start applying ({n} events, {} partitions)",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The in-process publisher's task.
type Publishing = tokio::task::JoinHandle<anyhow::Result<Exit>>;

/// Panics with the publisher's error when it stopped (a broker without Kafka transactions
/// stops it at its first commit).
async fn publishing(publisher: &mut Publishing) {
    if publisher.is_finished() {
        match publisher.await.unwrap() {
            Ok(exit) => panic!("the publisher stopped early: {exit:?}"),
            Err(e) => panic!("the publisher stopped: {}", my2pg::exit::render(&e)),
        }
    }
}

/// Once publishing has stopped: waits until every committed message of `topics` is applied,
/// exactly once per partition (`my2pg.kafka_offsets` counts them); returns how many.
async fn wait_applied_once(
    pg: &tokio_postgres::Client,
    group: &str,
    brokers: &str,
    topics: &[String],
) -> i64 {
    let (b2, t2) = (brokers.to_owned(), topics.to_vec());
    let published = tokio::task::spawn_blocking(move || committed_messages(&b2, &t2))
        .await
        .unwrap();
    let total: i64 = published.values().sum();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = applied(pg, group).await;
        let events: i64 = got.values().map(|v| v.1).sum();
        assert!(
            events <= total,
            "{events} events applied, only {total} published: {got:?}"
        );
        if events == total {
            for (k, n) in &published {
                assert_eq!(got.get(k).map(|v| v.1), Some(*n), "partition {k:?}");
            }
            return total;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{events} of {total} events applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `my2pg verify` reports identical, and heartbeats travelled through Kafka into
/// `my2pg.heartbeat`.
async fn verify_identical_with_heartbeat(config: &std::path::Path, pg: &tokio_postgres::Client) {
    let out = Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "verify",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let hb: i64 = pg
        .query_one("SELECT count(*) FROM my2pg.heartbeat", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hb, 1);
}

/// `sync --via kafka` in this process.
fn start_publisher(
    cfg: &my2pg::config::Config,
    metrics: my2pg::metrics::Metrics,
) -> (tokio::sync::watch::Sender<bool>, Publishing) {
    let ctx = sync::context(cfg, metrics, my2pg::health::Health::new()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = SyncOptions {
        via_kafka: true,
        ..Default::default()
    };
    (stop_tx, tokio::spawn(sync::run(ctx, opts, stop_rx)))
}

async fn writes(url: String, rounds: usize, first_new: i64) {
    let mut c = my_conn(&url).await;
    let mut next = first_new;
    for _ in 0..rounds {
        let (kind, a) = {
            let mut r = rand::rng();
            (r.random_range(0..10), r.random_range(1..next))
        };
        let sql = match kind {
            0..=3 => {
                next += 1;
                format!("INSERT INTO t1 VALUES ({next}, 'n{next}', {next}.5)")
            }
            4..=6 => format!("UPDATE t1 SET v = CONCAT(v, 'u'), d = d + 1 WHERE id = {a}"),
            7 => format!("DELETE FROM t1 WHERE id = {a}"),
            8 => {
                next += 1;
                format!("UPDATE t1 SET id = {next} WHERE id = {a}")
            }
            _ => format!(
                "BEGIN; INSERT INTO t2 VALUES ({a}, 'x') ON DUPLICATE KEY UPDATE note = CONCAT(note, 'y'); \
                 UPDATE t1 SET d = d - 1 WHERE id = {a}; COMMIT"
            ),
        };
        exec(&mut c, &sql).await;
    }
}

/// Creates a one-partition topic in the mock cluster, and on the real broker when one is used.
async fn create_topic(
    mock: &MockCluster<'static, DefaultProducerContext>,
    brokers: &str,
    topic: &str,
) {
    mock.create_topic(topic, 1, 1).unwrap();
    if brokers != mock.bootstrap_servers() {
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .create()
                .unwrap();
        let t = rdkafka::admin::NewTopic::new(topic, 1, rdkafka::admin::TopicReplication::Fixed(1));
        admin
            .create_topics(&[t], &rdkafka::admin::AdminOptions::new())
            .await
            .unwrap();
    }
}

/// Test logging, a mock cluster of three brokers, and the brokers to use: the mock's, unless
/// `MY2PG_TEST_KAFKA_BROKERS` names a real Kafka-protocol broker (`scripts/kafka-e2e`).
fn cluster() -> (MockCluster<'static, DefaultProducerContext>, String) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mock = MockCluster::new(3).unwrap();
    let brokers =
        std::env::var("MY2PG_TEST_KAFKA_BROKERS").unwrap_or_else(|_| mock.bootstrap_servers());
    (mock, brokers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_apply_every_event_exactly_once() {
    let (mock, brokers) = cluster();
    let db = harness::shared().fresh("kafka_scale").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE t1 (id INT PRIMARY KEY, v VARCHAR(200), d DECIMAL(12,2))",
    )
    .await;
    exec(&mut c, "CREATE TABLE t2 (k INT PRIMARY KEY, note TEXT)").await;
    exec(
        &mut c,
        "INSERT INTO t1 SELECT seq, CONCAT('v', seq), seq / 4 FROM seq_1_to_2000",
    )
    .await;
    let cfg = kafka_config(&db, &brokers);
    let file = config_file(&db, &cfg);
    let prefix = &cfg.kafka.topic_prefix;
    let topics = vec![
        format!("{prefix}.{}.t1", db.name),
        format!("{prefix}.{}.t2", db.name),
        format!("{prefix}.{}", cfg.sync.heartbeat_table),
    ];
    // The mock cluster's CreateTopics does not always answer; the publisher leaves existing
    // topics alone.
    for t in &topics {
        mock.create_topic(t, 4, 1).unwrap();
    }
    mock.create_topic(&format!("{prefix}-my2pg-positions"), 1, 1)
        .unwrap();

    // The publisher, in this process.
    let (stop_tx, mut publisher) = start_publisher(&cfg, my2pg::metrics::Metrics::new().unwrap());
    // Two workers, as processes: one is killed with SIGKILL mid-stream.
    let mut a = spawn_worker(file.path());
    let mut b = spawn_worker(file.path());
    let load = tokio::spawn(writes(db.mysql_db_url.clone(), 1500, 2000));
    let pg = pg(&db).await;
    wait_applying(&pg, &cfg.kafka.group, 2500, 4, &mut publisher).await;
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    load.await.unwrap();
    writes(db.mysql_db_url.clone(), 300, 100_000).await;
    let waited = tokio::spawn({
        let db = db.clone();
        async move { wait_identical(&db, &["t1", "t2"], Duration::from_secs(60)).await }
    });
    if let Err(e) = waited.await {
        let b2 = brokers.clone();
        let t2 = topics.clone();
        let published = tokio::task::spawn_blocking(move || committed_messages(&b2, &t2))
            .await
            .unwrap();
        panic!(
            "{e}; applied {:?}; published {published:?}",
            applied(&pg, &cfg.kafka.group).await
        );
    }

    // Stop publishing; every committed message is applied exactly once.
    stop_tx.send(true).unwrap();
    assert_eq!(publisher.await.unwrap().unwrap(), Exit::Stopped);
    wait_applied_once(&pg, &cfg.kafka.group, &brokers, &topics).await;
    // The verifier agrees.
    verify_identical_with_heartbeat(file.path(), &pg).await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(b.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = b.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn produce(brokers: &str, topic: &str, key: &[u8], value: Option<&[u8]>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut r = BaseRecord::to(topic).key(key);
    if let Some(v) = value {
        r = r.payload(v);
    }
    p.send(r).map_err(|(e, _)| e).unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
}

/// Debezium's MySQL connector tutorial events (`inventory.customers`), with the schema part
/// as the JsonConverter writes it by default, then without.
fn debezium_events(db: &str) -> Vec<(String, Option<String>)> {
    let source = |pos: u64| {
        format!(
            r#"{{"version":"2.7.0.Final","connector":"mysql","name":"dbserver1","ts_ms":1486500577000,"snapshot":"false","db":"{db}","sequence":null,"table":"customers","server_id":223344,"gtid":null,"file":"mysql-bin.000003","pos":{pos},"row":0,"thread":7,"query":null}}"#
        )
    };
    let schema = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"before"}],"optional":false,"name":"dbserver1.inventory.customers.Envelope"}"#;
    vec![
        (
            r#"{"id":1004}"#.into(),
            Some(format!(
                r#"{{"schema":{schema},"payload":{{"before":null,"after":{{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}},"source":{},"op":"c","ts_ms":1486500577691}}}}"#,
                source(154)
            )),
        ),
        (
            r#"{"id":1005}"#.into(),
            Some(format!(
                r#"{{"before":null,"after":{{"id":1005,"first_name":"Sally","last_name":"Thomas","email":"sally.thomas@acme.com"}},"source":{},"op":"r","ts_ms":1486500577691}}"#,
                source(154)
            )),
        ),
        (
            r#"{"id":1004}"#.into(),
            Some(format!(
                r#"{{"before":{{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}},"after":{{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"}},"source":{},"op":"u","ts_ms":1465581029523}}"#,
                source(484)
            )),
        ),
        (
            r#"{"id":1005}"#.into(),
            Some(format!(
                r#"{{"before":{{"id":1005,"first_name":"Sally","last_name":"Thomas","email":"sally.thomas@acme.com"}},"after":null,"source":{},"op":"d","ts_ms":1465581902461}}"#,
                source(805)
            )),
        ),
        // Debezium's tombstone after a delete.
        (r#"{"id":1005}"#.into(), None),
    ]
}

async fn start_worker(
    cfg: &my2pg::config::Config,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<Exit>>,
) {
    let ctx = sync::context(
        cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    (stop_tx, tokio::spawn(sync::consume::run(ctx, stop_rx)))
}

async fn names(pg: &tokio_postgres::Client, db: &str) -> Vec<(i32, String)> {
    pg.query(
        &format!("SELECT id, first_name FROM \"{db}\".customers ORDER BY id"),
        &[],
    )
    .await
    .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_events_apply_and_a_poison_message_stops_or_goes_to_the_dead_letters() {
    // Needs no Kafka transactions: with MY2PG_TEST_KAFKA_BROKERS it checks the apply side
    // against a broker that lacks them (scripts/kafka-e2e).
    let (mock, brokers) = cluster();
    let db = harness::shared().fresh("kafka_debezium").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE customers (id INT PRIMARY KEY, first_name VARCHAR(255) NOT NULL, \
         last_name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL UNIQUE)",
    )
    .await;
    let mut cfg = kafka_config(&db, &brokers);
    cfg.sync.heartbeat_interval_ms = 0;
    let topic = format!("{}.{}.customers", cfg.kafka.topic_prefix, db.name);
    create_topic(&mock, &brokers, &topic).await;
    for (k, v) in debezium_events(&db.name) {
        produce(
            &brokers,
            &topic,
            k.as_bytes(),
            v.as_deref().map(str::as_bytes),
        );
    }
    let pg = pg(&db).await;
    let (stop, worker) = start_worker(&cfg).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while names(&pg, &db.name).await != vec![(1004, "Anne Marie".to_owned())] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            names(&pg, &db.name).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Poison: not JSON, at offset 5. The worker stops naming topic, partition and offset.
    produce(&brokers, &topic, b"x", Some(b"not json at all"));
    let err = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let msg = my2pg::exit::render(&err);
    assert!(
        msg.contains(&format!("{topic}[0]@5")) && msg.contains("not JSON"),
        "{msg}"
    );
    drop(stop);
    // With the dead-letter policy: recorded, skipped, and the next message applies.
    let unknown = format!(
        r#"{{"before":null,"after":{{"id":1,"nope":2}},"source":{{"db":"{}","table":"customers"}},"op":"c"}}"#,
        db.name
    );
    produce(&brokers, &topic, b"y", Some(unknown.as_bytes()));
    let (k, v) = &debezium_events(&db.name)[1];
    produce(
        &brokers,
        &topic,
        k.as_bytes(),
        v.as_deref().map(str::as_bytes),
    );
    cfg.kafka.on_poison = sink::apply::ErrorPolicy::DeadLetter;
    let (stop, worker) = start_worker(&cfg).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while names(&pg, &db.name).await.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            names(&pg, &db.name).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead: Vec<(String, String)> = pg
        .query(
            "SELECT position, error FROM my2pg.dead_letter ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, format!("{topic}[0]@5"));
    assert!(dead[1].1.contains("nope"), "{dead:?}");
    stop.send(true).unwrap();
    assert_eq!(worker.await.unwrap().unwrap(), Exit::Stopped);
}

/// Accounts in two tables; every transaction moves money between them, so the sum over both
/// tables never changes. Some transactions touch hundreds of rows, some more than a batch.
const ACCOUNTS: i64 = 500;
const BALANCE: i64 = 1000;

async fn transfers(url: String, rounds: usize) {
    let mut c = my_conn(&url).await;
    for round in 0..rounds {
        let (kind, i, j, x) = {
            let mut r = rand::rng();
            (
                r.random_range(0..10),
                r.random_range(1..=ACCOUNTS),
                r.random_range(1..=ACCOUNTS),
                r.random_range(1..50),
            )
        };
        let sql = if round % 97 == 50 {
            // 1,000 row events: more than `batch_rows`, applied in fragments of one
            // PostgreSQL transaction.
            "BEGIN; UPDATE acct_a SET bal = bal - 1; UPDATE acct_b SET bal = bal + 1; COMMIT"
                .to_owned()
        } else {
            match kind {
                0..=5 => format!(
                    "BEGIN; UPDATE acct_a SET bal = bal - {x} WHERE id = {i}; \
                     UPDATE acct_b SET bal = bal + {x} WHERE id = {j}; COMMIT"
                ),
                6..=8 => format!(
                    "BEGIN; UPDATE acct_b SET bal = bal - {x} WHERE id = {j}; \
                     UPDATE acct_a SET bal = bal + {x} WHERE id = {i}; COMMIT"
                ),
                _ => format!(
                    "BEGIN; UPDATE acct_a SET bal = bal - 1 WHERE id <= 200; \
                     UPDATE acct_b SET bal = bal + 200 WHERE id = {j}; COMMIT"
                ),
            }
        };
        exec(&mut c, &sql).await;
    }
}

/// Samples the target until told to stop: (samples with both tables complete, violations of
/// the sum invariant with the first few sums seen).
async fn sample_invariant(
    db: TestDb,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (u64, u64, Vec<i64>) {
    let pg = pg(&db).await;
    let sql = format!(
        "SELECT (SELECT count(*) FROM \"{s}\".acct_a), (SELECT count(*) FROM \"{s}\".acct_b), \
         ((SELECT sum(bal) FROM \"{s}\".acct_a) + (SELECT sum(bal) FROM \"{s}\".acct_b))::bigint",
        s = db.name
    );
    let (mut samples, mut violations, mut seen) = (0, 0, Vec::new());
    while !*stop.borrow() {
        // One statement, one snapshot: both sums are of the same committed state.
        if let Ok(r) = pg.query_one(&sql, &[]).await {
            let (a, b, sum): (i64, i64, Option<i64>) = (r.get(0), r.get(1), r.get(2));
            if a == ACCOUNTS && b == ACCOUNTS {
                samples += 1;
                if sum != Some(2 * ACCOUNTS * BALANCE) {
                    violations += 1;
                    if seen.len() < 5 {
                        seen.push(sum.unwrap_or(-1));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (samples, violations, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_mode_applies_source_transactions_whole_across_a_killed_worker() {
    let (mock, brokers) = cluster();
    let db = harness::shared().fresh("kafka_txn").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    for t in ["acct_a", "acct_b"] {
        exec(
            &mut c,
            &format!("CREATE TABLE {t} (id INT PRIMARY KEY, bal BIGINT NOT NULL)"),
        )
        .await;
        exec(
            &mut c,
            &format!("INSERT INTO {t} SELECT seq, {BALANCE} FROM seq_1_to_{ACCOUNTS}"),
        )
        .await;
    }
    let mut cfg = kafka_config(&db, &brokers);
    cfg.kafka.mode = KafkaMode::Transactional;
    let file = config_file(&db, &cfg);
    let prefix = &cfg.kafka.topic_prefix;
    let topic = format!("{prefix}.my2pg-transactions");
    // The mock cluster's CreateTopics does not always answer (see above).
    mock.create_topic(&topic, 1, 1).unwrap();
    mock.create_topic(&format!("{prefix}-my2pg-positions"), 1, 1)
        .unwrap();

    let metrics = my2pg::metrics::Metrics::new().unwrap();
    let (stop_tx, mut publisher) = start_publisher(&cfg, metrics.clone());
    let mut a = spawn_worker(file.path());
    let (sampling_tx, sampling) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_invariant(db.clone(), sampling));
    let pg = pg(&db).await;
    // The copy has been applied (nothing writes during it) before the load starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let complete = format!(
        "SELECT (SELECT count(*) FROM \"{s}\".acct_a) + (SELECT count(*) FROM \"{s}\".acct_b)",
        s = db.name
    );
    loop {
        let n: i64 = match pg.query_one(&complete, &[]).await {
            Ok(r) => r.get(0),
            Err(_) => 0,
        };
        if n == 2 * ACCOUNTS {
            break;
        }
        publishing(&mut publisher).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy was not applied ({n} rows)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let load = tokio::spawn(transfers(db.mysql_db_url.clone(), 600));
    // SIGKILL the worker mid-stream; two new ones join: one owns the single partition, the
    // other idles.
    wait_applying(
        &pg,
        &cfg.kafka.group,
        2 * ACCOUNTS + 1500,
        1,
        &mut publisher,
    )
    .await;
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let b = spawn_worker(file.path());
    let c2 = spawn_worker(file.path());
    load.await.unwrap();
    wait_identical(&db, &["acct_a", "acct_b"], Duration::from_secs(90)).await;

    // The publisher's committed position feeds the binlog runway, as direct sync's
    // checkpoint does.
    assert!(
        metrics.binlog_runway_seconds().is_some(),
        "no binlog runway under --via kafka"
    );

    // Stop publishing; every committed message (changes and end markers) applied once, in
    // the one partition.
    stop_tx.send(true).unwrap();
    assert_eq!(publisher.await.unwrap().unwrap(), Exit::Stopped);
    let total = wait_applied_once(
        &pg,
        &cfg.kafka.group,
        &brokers,
        std::slice::from_ref(&topic),
    )
    .await;
    assert_eq!(applied(&pg, &cfg.kafka.group).await.len(), 1);
    sampling_tx.send(true).unwrap();
    let (samples, violations, seen) = sampler.await.unwrap();
    eprintln!(
        "{total} messages applied once; {samples} samples of the target, {violations} violations"
    );
    assert_eq!(
        violations, 0,
        "the target showed a half-applied source transaction in {violations} of {samples} samples (sums {seen:?})"
    );
    assert!(samples > 20, "only {samples} samples of the target");
    verify_identical_with_heartbeat(file.path(), &pg).await;
    drop((b, c2));
}
