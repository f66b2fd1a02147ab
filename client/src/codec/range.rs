//! Byte ranges → the segments they touch and the slice of each, so a range read fetches
//! and decodes only those segments.

use std::ops::Range;

/// The part of one segment's plaintext that a range covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SegmentSlice {
    pub(super) index: u64,
    pub(super) within: Range<usize>,
}

/// The segments of an object of `size` bytes cut every `segment_bytes` that `range`
/// touches, clamped to the object. An empty or out-of-bounds range touches none.
pub(super) fn plan(
    size: u64,
    segment_bytes: u64,
    range: Range<u64>,
) -> impl Iterator<Item = SegmentSlice> + Send + 'static {
    let end = range.end.min(size);
    let start = range.start.min(end);
    let (first, last) = if start < end {
        (start / segment_bytes, (end - 1) / segment_bytes + 1)
    } else {
        (0, 0)
    };
    (first..last).map(move |index| {
        let seg_start = index * segment_bytes;
        let seg_end = (seg_start + segment_bytes).min(size);
        let from = start.max(seg_start) - seg_start;
        let to = end.min(seg_end) - seg_start;
        SegmentSlice {
            index,
            // Both are below segment_bytes, which fits usize (validated config).
            within: usize::try_from(from).unwrap_or(0)..usize::try_from(to).unwrap_or(0),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slices(size: u64, seg: u64, range: Range<u64>) -> Vec<(u64, Range<usize>)> {
        plan(size, seg, range)
            .map(|s| (s.index, s.within))
            .collect()
    }

    #[test]
    fn plans_only_the_touched_segments() {
        assert_eq!(
            slices(250, 100, 0..250),
            [(0, 0..100), (1, 0..100), (2, 0..50)]
        );
        assert_eq!(slices(250, 100, 150..160), [(1, 50..60)]);
        assert_eq!(slices(250, 100, 99..101), [(0, 99..100), (1, 0..1)]);
        assert_eq!(slices(250, 100, 200..1000), [(2, 0..50)]);
        assert!(slices(250, 100, 10..10).is_empty());
        assert!(slices(250, 100, 300..400).is_empty());
        assert!(slices(0, 100, 0..10).is_empty());
        assert_eq!(slices(200, 100, 100..200), [(1, 0..100)]);
    }
}
