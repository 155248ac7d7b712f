//! Delivery check: which sequence numbers of each producer were acknowledged and which
//! were received, so a run can count lost and duplicated messages.

/// One bit per sequence number.
#[derive(Default, Clone)]
pub struct SeqSet {
    bits: Vec<u64>,
    count: u64,
}

impl SeqSet {
    /// Marks `seq`; returns false if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        self.count += u64::from(fresh);
        fresh
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn merge(&mut self, other: &SeqSet) {
        if other.bits.len() > self.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= *b;
        }
        self.count = self.bits.iter().map(|w| u64::from(w.count_ones())).sum();
    }

    /// Members of `self` missing from `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        self.bits
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.bits.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }
}

/// Per producer: what was acknowledged, what was received, how often twice.
#[derive(Default, Clone)]
pub struct Ledger {
    pub acked: Vec<SeqSet>,
    pub received: Vec<SeqSet>,
    pub duplicated: u64,
}

impl Ledger {
    pub fn new(producers: usize) -> Ledger {
        Ledger {
            acked: vec![SeqSet::default(); producers],
            received: vec![SeqSet::default(); producers],
            duplicated: 0,
        }
    }

    pub fn receive(&mut self, producer: u32, seq: u64) {
        let Some(set) = self.received.get_mut(producer as usize) else {
            return;
        };
        if !set.insert(seq) {
            self.duplicated += 1;
        }
    }

    /// Acknowledged messages never received.
    pub fn lost(&self) -> u64 {
        self.acked
            .iter()
            .zip(&self.received)
            .map(|(a, r)| a.missing_from(r))
            .sum()
    }

    pub fn received_total(&self) -> u64 {
        self.received.iter().map(SeqSet::len).sum()
    }

    pub fn acked_total(&self) -> u64 {
        self.acked.iter().map(SeqSet::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_and_duplicated_are_counted() {
        let mut l = Ledger::new(2);
        for s in 0..100 {
            l.acked[0].insert(s);
        }
        l.acked[1].insert(5);
        for s in 0..98 {
            l.receive(0, s);
        }
        l.receive(0, 10);
        l.receive(1, 5);
        assert_eq!(l.lost(), 2);
        assert_eq!(l.duplicated, 1);
        assert_eq!(l.received_total(), 99);
    }
}
