//! The suite on `postgres://`, plus a real network outage.

use dozen_testing::{Backend, TestDatabase};

use crate::suite::{Features, Harness};

async fn harness() -> Option<Harness> {
    let backend = Backend::postgres()?;
    let database = TestDatabase::create(&backend).await;
    let url = database.url.parse().unwrap();
    let bus = dozen_bus::connect(&url).unwrap();
    Some(Harness {
        url,
        bus,
        features: Features::ALL,
        _keep: Some(database),
    })
}

crate::conformance_suite!(harness);
