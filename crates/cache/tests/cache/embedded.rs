//! The suite on `sqlite://`: the embedded cache, shared by the processes of one host.

use crate::suite::{unique, Harness};

async fn harness() -> Option<Harness> {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", folder.path().join("cache.db").display());
    Some(Harness {
        url: format!("{url}?prefix={}", unique("test")),
        _keep: Some(folder),
    })
}

crate::cache_suite!(harness);
