//! Reading a service's `/metrics` in a test.

/// The value of `sample` in `text`, Prometheus' text exposition format
/// (<https://prometheus.io/docs/instrumenting/exposition_formats/>): the
/// sample's name with its labels as exposed (`password_checks_total`,
/// `http_requests_total{method="GET",…}`); `None` when it is not there.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Fetches the `/metrics` at `url` and reads `sample` from it (see [`sample`]).
///
/// # Panics
/// When the endpoint does not answer: a test's service is expected to.
pub async fn scrape(client: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    let text = client
        .get(url)
        .send()
        .await
        .expect("the service answers /metrics")
        .text()
        .await
        .expect("/metrics is text");
    sample(&text, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_found_by_its_whole_name_and_labels_and_nothing_else() {
        let text = "# HELP checks_total Checks.\n# TYPE checks_total counter\n\
                    checks_total 3\nchecks_total_seconds 9\n\
                    requests_total{route=\"/a\"} 2 1700000000\n";
        assert_eq!(sample(text, "checks_total"), Some(3.0));
        assert_eq!(sample(text, "checks_total_seconds"), Some(9.0));
        assert_eq!(sample(text, "requests_total{route=\"/a\"}"), Some(2.0));
        assert_eq!(sample(text, "checks"), None);
        assert_eq!(sample(text, "missing_total"), None);
    }
}
