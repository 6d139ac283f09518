//! Criterion benchmarks of the server's hot paths, without sockets:
//!
//! * the codec: decoding a relayed chat message and encoding its delivery,
//!   in V1 and V2 framing (every relayed message pays one of each);
//! * the tutoring rules: a student joining the queue, a claim (assign +
//!   dequeue + create chat) and a finish, on a queue of 10,000 waiting
//!   students: the very steps `ChatLifetime` runs, on `LocalParts` (the parts
//!   held directly, so no mailbox round trips are timed; `pollster` polls the
//!   steps, which answer at once).
//!
//! Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pollster::block_on;
use serde_json::json;

use tutor_queue::domain::{ChatId, LocalParts, StudentKey, Ticket, Tutoring, UserId};
use tutor_queue::protocol::{self, Framing};

const V1_SEND: &str = r#"{"topic":"chats:a17ffb00-ec45-4129-b076-775057324b7d","event":"teacher:send","payload":{"message":"Message from teacher: 17"},"ref":"42"}"#;
const V2_SEND: &str = r#"["3","42","chats:a17ffb00-ec45-4129-b076-775057324b7d","teacher:send",{"message":"Message from teacher: 17"}]"#;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, framing, frame) in [("v1", Framing::V1, V1_SEND), ("v2", Framing::V2, V2_SEND)] {
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| protocol::decode(framing, black_box(frame)).map(|m| m.payload.get().len()))
        });
        let payload = r#"{"message":"Message from teacher: 17"}"#;
        let topic = "chats:a17ffb00-ec45-4129-b076-775057324b7d";
        group.bench_function(format!("encode_push_{name}"), |b| {
            b.iter(|| {
                protocol::encode_push(
                    framing,
                    black_box(topic),
                    "student:receive",
                    black_box(payload),
                )
            })
        });
        group.bench_function(format!("encode_reply_{name}"), |b| {
            b.iter(|| {
                protocol::encode_reply(
                    framing,
                    Some("\"3\""),
                    Some("\"42\""),
                    black_box(topic),
                    protocol::ReplyStatus::Ok,
                    "{}",
                )
            })
        });
    }
    group.finish();
}

fn user(n: u64) -> UserId {
    UserId::from_json(&json!(n)).unwrap_or_else(|| unreachable!("integers are valid ids"))
}

/// `waiting` students in the queue and one present teacher.
fn queue_of(waiting: u64) -> Tutoring<LocalParts> {
    let tutoring = Tutoring::new(LocalParts::default());
    block_on(async {
        for n in 0..waiting {
            let id = user(n);
            let key = StudentKey(id.key.clone());
            let _ = tutoring.student_present(id).await;
            let _ = tutoring.ready(&key, Ticket::default()).await;
        }
        let _ = tutoring.teacher_present(user(1).as_teacher()).await;
    });
    tutoring
}

fn rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules");
    group.bench_function("ready_into_queue_of_10k", |b| {
        // By reference, so dropping the 10k roster stays outside the timing.
        b.iter_batched_ref(
            || {
                let tutoring = queue_of(10_000);
                let newcomer = user(1_000_000);
                let _ = block_on(tutoring.student_present(newcomer.clone()));
                (tutoring, StudentKey(newcomer.key))
            },
            |(tutoring, key)| block_on(tutoring.ready(key, Ticket::default())).map(|s| s.outcome),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("claim_and_finish_from_queue_of_10k", |b| {
        let tutoring = queue_of(10_000);
        let teacher = user(1);
        let mut rng = rand::rng();
        b.iter(|| {
            // The steps ChatLifetime runs: claim (slot, head of the queue, chat),
            // terminate, the chat forgotten, and the student queues again at the tail.
            let chat = ChatId::random(&mut rng);
            block_on(async {
                let claimed = tutoring.claim(&teacher, chat, 0).await.ok()?.outcome?;
                tutoring.terminate(chat).await.ok()?;
                tutoring.discard(chat).await.ok()?;
                tutoring
                    .ready(&claimed.student, Ticket::default())
                    .await
                    .ok()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, codec, rules);
criterion_main!(benches);
