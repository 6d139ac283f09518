//! Criterion benchmarks of the server's hot paths, without sockets:
//!
//! * the codec: decoding a relayed chat message and encoding its delivery,
//!   in V1 and V2 framing (every relayed message pays one of each);
//! * the tutoring rules: a student joining the queue, a claim (dequeue +
//!   assign + create chat) and a finish, on a queue of 10,000 waiting students.
//!
//! Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;

use tutor_queue::domain::{ChatId, Chats, StudentKey, Students, Teachers, UserId};
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

/// A roster with `waiting` students in the queue and one present teacher.
fn queue_of(waiting: u64) -> (Teachers, Students, Chats) {
    let mut students = Students::new();
    for n in 0..waiting {
        let id = user(n);
        let key = StudentKey(id.key.clone());
        students.join(id);
        students.ready(&key);
    }
    let mut teachers = Teachers::new();
    teachers.join(user(1).as_teacher());
    (teachers, students, Chats::new())
}

fn rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules");
    group.bench_function("ready_into_queue_of_10k", |b| {
        // By reference, so dropping the 10k roster stays outside the timing.
        b.iter_batched_ref(
            || {
                let (_, mut students, _) = queue_of(10_000);
                let newcomer = user(1_000_000);
                students.join(newcomer.clone());
                (students, StudentKey(newcomer.key))
            },
            |(students, key)| students.ready(key),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("claim_and_finish_from_queue_of_10k", |b| {
        let (mut teachers, mut students, mut chats) = queue_of(10_000);
        let teacher = user(1);
        let teacher_key = teacher.as_teacher();
        let mut rng = rand::rng();
        b.iter(|| {
            // claim: slot, head of the queue, chat ...
            let chat = ChatId::random(&mut rng);
            let slot = teachers.try_assign(&teacher_key, chat);
            let assigned = students.dequeue(chat);
            if let (Ok(()), Some(assigned)) = (slot, assigned) {
                chats.create(chat, &teacher, &assigned.id);
                // ... then finish, and the student queues again at the tail.
                if let Some(ended) = chats.finish(chat) {
                    teachers.release(&ended.teacher, chat);
                    students.finish_chat(&ended.student, chat);
                    students.ready(&ended.student);
                }
                chats.discard(chat);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, codec, rules);
criterion_main!(benches);
