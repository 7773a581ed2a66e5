//! An app written against plan v1's generated code: it makes the calls of
//! tests/codegen/expected-calls.json through a real `trailhound::Client` whose plugin
//! records every message, and prints them as JSON lines. Against plan v2's code it must
//! not compile (a new required property, a removed event, a narrowed enum).
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codegen_harness::music_app_tracker::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: codegen-harness-app DATA_DIR")?;
    let seen: Arc<Mutex<Vec<trailhound::Message>>> = Arc::default();
    let record = Arc::clone(&seen);
    let client = trailhound::Builder::new("key", "http://127.0.0.1:9", dir)
        .transport(|_: &trailhound::HttpRequest| {
            trailhound::UploadResult::NetworkError("offline".into())
        })
        .plugin(move |m: trailhound::Message| {
            record.lock().ok()?.push(m.clone());
            Some(m)
        })
        .build()?;
    let t = MusicAppTracker::new(&client);

    t.song_played(
        215_000,
        0,
        "s1",
        SongPlayedSource::Playlist,
        SongPlayedOptions {
            playlist_id: Some("p1".into()),
            shuffle: Some(true),
            output: Some(SongPlayedOutput {
                kind: SongPlayedOutputKind::Headphones,
                volume: Some(0.5),
            }),
            ..Default::default()
        },
    )?;
    t.song_skipped(
        SongSkippedDirection::Next,
        30_000,
        "s1",
        SongSkippedOptions {
            source: Some(SongSkippedSource::Radio),
        },
    )?;
    t.song_liked(
        "s2",
        SongLikedOptions {
            tags: Some(vec!["calm".into(), "piano".into()]),
        },
    )?;
    t.player_screen(PlayerScreenOptions {
        view: Some(PlayerScreenView::Full),
    })?;
    t.settings_page("privacy")?;
    t.identify(
        Some("user-42"),
        IdentifyTraitsPlan::Premium,
        IdentifyTraitsOptions {
            email: Some("a@example.com".into()),
            age: Some(30),
        },
    )?;
    t.group("g-1", "Band", GroupTraitsOptions { seats: Some(4) })?;
    t.playlist_created(
        None,
        true,
        vec![
            PlaylistCreatedSongsItem {
                id: "s1".into(),
                added_by: None,
            },
            PlaylistCreatedSongsItem {
                id: "s2".into(),
                added_by: Some("ann".into()),
            },
        ],
        "mixtape",
        PlaylistCreatedOptions {
            class: Some("jazz".into()),
            self_: Some(false),
            meta: Some(BTreeMap::from([("k".to_owned(), json!("v"))])),
            counts: Some(BTreeMap::from([("a".to_owned(), 1)])),
            rating: Some(3),
            score: Some(json!("high")),
            visibility: Some(PlaylistCreatedVisibility::N2x),
        },
    )?;
    t.app_opened()?;
    t.heartbeat()?;
    client.shutdown(Duration::from_secs(5))?;

    let seen = seen.lock().map_err(|_| "poisoned")?;
    for m in seen.iter() {
        let mut call = serde_json::Map::new();
        call.insert("type".into(), json!(m.kind.as_str()));
        if let Some(n) = m.event.as_ref().or(m.name.as_ref()) {
            call.insert("name".into(), json!(n));
        }
        if m.kind == trailhound::MessageType::Identify {
            call.insert("userId".into(), json!(m.user_id));
        }
        if let Some(g) = &m.group_id {
            call.insert("groupId".into(), json!(g));
        }
        let props = m.properties.as_ref().or(m.traits.as_ref());
        call.insert("properties".into(), serde_json::to_value(props)?);
        println!("{}", serde_json::Value::Object(call));
    }
    Ok(())
}
