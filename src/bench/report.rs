//! Bench results: HDR histograms of latency, the summary (human and JSON), the
//! percentile distribution (.hgrm) and a latency-by-percentile chart (SVG).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// Latency histogram in nanoseconds, 3 significant digits, up to one hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant bounds are valid")
}

#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub count: u64,
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 1000.0 * 10.0).round() / 10.0
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        Some(Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            count: h.len(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: String,
    pub acks: String,
    pub producers: usize,
    pub consumers: usize,
    pub partitions: i32,
    /// Queues of the queue modes (0 in the topic modes).
    pub queues: usize,
    pub size: usize,
    pub batch: usize,
    pub shard_aware: bool,
    /// Target rate of latency mode (msgs/s), none for the others.
    pub rate: Option<u64>,
    pub messages_sent: u64,
    pub messages_acked: u64,
    pub messages_received: u64,
    pub duration_s: f64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub e2e_us: Option<Percentiles>,
    pub ack_us: Option<Percentiles>,
    pub lost: u64,
    pub duplicated: u64,
    /// CPU time the embedded broker used during the run (user + system), if known.
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU per message moved: the cost figure that noise on a shared machine
    /// disturbs least.
    pub broker_cpu_ns_per_msg: Option<f64>,
    /// Peak resident memory of the embedded broker (VmHWM), MiB.
    pub broker_peak_rss_mb: Option<f64>,
}

fn line(name: &str, p: &Option<Percentiles>) -> String {
    match p {
        None => format!("{name:<8} -"),
        Some(p) => format!(
            "{name:<8} p50 {:>9.1}  p90 {:>9.1}  p99 {:>9.1}  p99.9 {:>9.1}  p99.99 {:>9.1}  max {:>9.1}  (µs, {} samples)",
            p.p50, p.p90, p.p99, p.p999, p.p9999, p.max, p.count
        ),
    }
}

impl Summary {
    pub fn human(&self) -> String {
        let mut s = String::new();
        let rate = self
            .rate
            .map(|r| format!(" rate={r}/s"))
            .unwrap_or_default();
        let spread = if self.queues > 0 {
            format!("{} queue(s)", self.queues)
        } else {
            format!("{} partition(s)", self.partitions)
        };
        let _ = writeln!(
            s,
            "peregrine bench {}: {} producer(s), {} consumer(s), {}, {} B messages, batch {}, acks={}, shard-aware={}{}",
            self.mode, self.producers, self.consumers, spread, self.size, self.batch, self.acks, self.shard_aware, rate
        );
        let _ = writeln!(
            s,
            "messages sent {} acked {} received {} in {:.2} s",
            self.messages_sent, self.messages_acked, self.messages_received, self.duration_s
        );
        let _ = writeln!(
            s,
            "throughput {:.0} msgs/s, {:.1} MB/s",
            self.msgs_per_s, self.mb_per_s
        );
        let _ = writeln!(s, "{}", line("e2e", &self.e2e_us));
        let _ = writeln!(s, "{}", line("ack", &self.ack_us));
        if let (Some(cpu), Some(per)) = (self.broker_cpu_s, self.broker_cpu_ns_per_msg) {
            let _ = writeln!(s, "broker cpu {cpu:.2} s, {per:.0} ns per message");
        }
        if let Some(rss) = self.broker_peak_rss_mb {
            let _ = writeln!(s, "broker peak resident memory {rss:.0} MiB");
        }
        let _ = write!(
            s,
            "delivery lost {} duplicated {}",
            self.lost, self.duplicated
        );
        s
    }
}

/// The percentile distribution in HdrHistogram's text format (values in µs).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inverse = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{:>12.3} {:>14.12} {:>10} {}",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            total,
            inverse
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    s
}

/// A latency-by-percentile chart: x is 1/(1-p) on a log scale (50 % … 99.999 %),
/// y is latency in µs on a log scale.
pub fn svg(series: &[(&str, &Histogram<u64>)], title: &str) -> String {
    let (w, h, left, bottom, top, right) = (900.0, 520.0, 80.0, 60.0, 40.0, 160.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let x_max = 5.0; // log10(1/(1-0.99999))
    let max_us = series
        .iter()
        .map(|(_, hist)| hist.max() as f64 / 1000.0)
        .fold(1.0, f64::max);
    let min_us = series
        .iter()
        .filter(|(_, hist)| !hist.is_empty())
        .map(|(_, hist)| (hist.min() as f64 / 1000.0).max(0.1))
        .fold(max_us, f64::min);
    let (y_lo, y_hi) = (
        min_us.log10().floor(),
        max_us.log10().ceil().max(min_us.log10().floor() + 1.0),
    );
    let px = |x: f64| left + (x / x_max).min(1.0) * pw;
    let py = |us: f64| top + ph - ((us.max(0.1).log10() - y_lo) / (y_hi - y_lo)) * ph;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"16\">{}</text>\n",
        left,
        xml_escape(title)
    );
    let ticks = [
        (std::f64::consts::LOG10_2, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ];
    for (at, label) in ticks {
        let x = px(at);
        let _ = writeln!(s, "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>", top + ph, top + ph + 18.0);
    }
    let mut decade = y_lo;
    while decade <= y_hi {
        let us = 10f64.powf(decade);
        let y = py(us);
        let _ = writeln!(s, "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{us} µs</text>", left + pw, left - 6.0, y + 4.0);
        decade += 1.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>",
        left + pw / 2.0,
        h - 14.0
    );
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    for (i, (name, hist)) in series.iter().enumerate() {
        if hist.is_empty() {
            continue;
        }
        let color = colors[i % colors.len()];
        let points: Vec<String> = hist
            .iter_quantiles(5)
            .filter(|v| v.quantile_iterated_to() < 1.0)
            .map(|v| {
                let x = (1.0 / (1.0 - v.quantile_iterated_to())).log10();
                format!(
                    "{:.1},{:.1}",
                    px(x),
                    py(v.value_iterated_to() as f64 / 1000.0)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let ly = top + 20.0 * (i as f64 + 1.0);
        let _ = writeln!(s, "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>", left + pw + 10.0, left + pw + 40.0, left + pw + 46.0, ly + 4.0, xml_escape(name));
    }
    s.push_str("</svg>\n");
    s
}

fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_outputs_of_a_known_distribution() {
        let mut h = histogram();
        for i in 1..=10_000u64 {
            h.record(i * 1000).expect("in range");
        }
        let p = Percentiles::of(&h).expect("not empty");
        assert!((p.p50 - 5000.0).abs() < 10.0, "{p:?}");
        assert!((p.p99 - 9900.0).abs() < 15.0, "{p:?}");
        assert_eq!(p.count, 10_000);
        let text = hgrm(&h);
        assert!(text.starts_with("       Value     Percentile"));
        assert!(text.contains("Total count    =        10000"));
        let chart = svg(&[("e2e", &h)], "test");
        assert!(chart.starts_with("<svg") && chart.contains("<polyline"));
        assert_eq!(Percentiles::of(&histogram()), None);
    }
}
