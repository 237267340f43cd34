//! Property tests of the client message parser (`protocol::parse`), the one function every
//! WebSocket text message from anyone goes through: whatever the input, it answers (never panics),
//! with the error code the input deserves; every well-formed message reads back as itself, whatever
//! unknown fields ride along.
//!
//! 10,000 cases per property run with the tests; a million mixed inputs run with
//! `cargo test -p actors --release --test protocol_props -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use actors::protocol::{parse, ClientMessage, ErrorCode};
use proptest::prelude::*;
use serde_json::{Map, Value};

const TYPES: [&str; 6] = ["answer", "audio_end", "interrupt", "resume", "end", "ping"];

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(TYPES.to_vec()).prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "type",
                        "text",
                        "turn",
                        "seq",
                        "last_seq",
                        "audio_duration_s",
                        "format"
                    ])
                    .prop_map(str::to_string),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object with a `type` (known, unknown or not a string) and fields of any type.
fn message_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            3 => prop::sample::select(TYPES.to_vec()).prop_map(|s| Value::String(s.into())),
            1 => json(),
        ],
        prop::collection::btree_map(
            prop::sample::select(vec![
                "text",
                "turn",
                "seq",
                "last_seq",
                "audio_duration_s",
                "format",
                "extra",
            ])
            .prop_map(str::to_string),
            json(),
            0..5,
        ),
    )
        .prop_map(|(ty, fields)| {
            let mut m: Map<String, Value> = fields.into_iter().collect();
            m.insert("type".into(), ty);
            Value::Object(m)
        })
}

/// A well-formed client message.
fn message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            ".{0,200}",
            prop::option::of(0.0f64..=3600.0),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u64>())
        )
            .prop_map(
                |(text, audio_duration_s, turn, seq)| ClientMessage::Answer {
                    text,
                    audio_duration_s,
                    turn,
                    seq
                }
            ),
        prop::option::of(".{0,20}").prop_map(|format| ClientMessage::AudioEnd { format }),
        Just(ClientMessage::Interrupt),
        any::<u64>().prop_map(|last_seq| ClientMessage::Resume { last_seq }),
        Just(ClientMessage::End),
        Just(ClientMessage::Ping),
    ]
}

/// Any input a client could send: raw text, JSON of any shape, message-like objects, and
/// well-formed messages cut short or with a character changed.
fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        json().prop_map(|v| v.to_string()),
        message_like().prop_map(|v| v.to_string()),
        (message(), any::<prop::sample::Index>()).prop_map(|(m, i)| {
            let s = serde_json::to_string(&m).unwrap();
            let cut = i.index(s.len() + 1);
            s.get(..cut).unwrap_or(&s).to_string()
        }),
        (message(), any::<prop::sample::Index>(), any::<char>()).prop_map(|(m, i, c)| {
            let mut s: Vec<char> = serde_json::to_string(&m).unwrap().chars().collect();
            let at = i.index(s.len());
            s[at] = c;
            s.into_iter().collect()
        }),
    ]
}

/// The code an input deserves, worked out without the parser.
fn deserved(input: &str) -> Option<ErrorCode> {
    let Ok(v) = serde_json::from_str::<Value>(input) else {
        return Some(ErrorCode::InvalidJson);
    };
    match v.get("type").and_then(Value::as_str) {
        None => Some(ErrorCode::InvalidMessage),
        Some(t) if !TYPES.contains(&t) => Some(ErrorCode::UnknownType),
        Some(_) => None, // a known type: the message, or invalid_message
    }
}

fn check(input: &str) -> Result<(), TestCaseError> {
    let got = parse(input);
    match (deserved(input), &got) {
        (Some(code), Err(r)) => prop_assert_eq!(code, r.code, "{:?}", input),
        (Some(code), Ok(m)) => {
            prop_assert!(false, "{input:?} should be {code} but read as {m:?}")
        }
        (None, Err(r)) => prop_assert_eq!(r.code, ErrorCode::InvalidMessage, "{:?}", input),
        (None, Ok(m)) => {
            // What was read is what the input said.
            let v: Value = serde_json::from_str(input).unwrap();
            prop_assert_eq!(v["type"].as_str(), Some(m.type_name()));
            if let ClientMessage::Answer {
                text,
                audio_duration_s,
                ..
            } = m
            {
                prop_assert_eq!(v["text"].as_str(), Some(text.as_str()));
                if let Some(d) = audio_duration_s {
                    prop_assert!(d.is_finite() && (0.0..=3600.0).contains(d));
                }
            }
        }
    }
    if let Err(r) = &got {
        prop_assert!(!r.message.is_empty(), "a refusal says why");
    }
    Ok(())
}

/// Equal, a spoken answer's length to within a unit in the last place (serde_json reads floats
/// fast rather than correctly rounded: 1727.6526351204245 may read as ...243).
fn same(a: &ClientMessage, b: &ClientMessage) -> bool {
    match (a, b) {
        (
            ClientMessage::Answer {
                text: t1,
                audio_duration_s: a1,
                turn: n1,
                seq: s1,
            },
            ClientMessage::Answer {
                text: t2,
                audio_duration_s: a2,
                turn: n2,
                seq: s2,
            },
        ) => {
            let close = match (a1, a2) {
                (Some(x), Some(y)) => (x - y).abs() <= x.abs().max(1.0) * 1e-12,
                (x, y) => x == y,
            };
            t1 == t2 && n1 == n2 && s1 == s2 && close
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_input_gets_the_code_it_deserves(input in any_input()) {
        check(&input)?;
    }

    #[test]
    fn message_shaped_objects_of_any_field_types(v in message_like()) {
        check(&v.to_string())?;
    }

    #[test]
    fn well_formed_messages_read_back_as_themselves(
        m in message(),
        extra in prop::collection::btree_map("x_[a-z]{1,8}", json(), 0..4),
    ) {
        let mut v = serde_json::to_value(&m).unwrap();
        prop_assert!(same(&parse(&v.to_string()).unwrap(), &m));
        // Fields nobody defined ride along without changing anything.
        if let Value::Object(o) = &mut v {
            o.extend(extra);
        }
        prop_assert!(same(&parse(&v.to_string()).unwrap(), &m));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000_000))]

    /// The long run: a million mixed inputs (`--ignored`, best with `--release`).
    #[test]
    #[ignore]
    fn a_million_inputs(input in any_input()) {
        check(&input)?;
    }
}
