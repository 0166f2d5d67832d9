//! Rules for multipart uploads that every under-store enforces the same way (S3's rules).

use crate::{CompletedPart, UfsError, UfsResult};

/// S3's minimum size in bytes of every part of a multipart upload but the last (5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Highest part number S3 accepts.
pub(crate) const MAX_PART_NUMBER: u32 = 10_000;

/// A part number must be in `1..=10000`.
pub(crate) fn check_part_number(path: &str, part_number: u32) -> UfsResult<()> {
    if (1..=MAX_PART_NUMBER).contains(&part_number) {
        return Ok(());
    }
    Err(UfsError::invalid(
        path,
        format!("part number {part_number} is not in 1..={MAX_PART_NUMBER}"),
    ))
}

/// A range of a source object to copy into a part: not empty, and within the source's `size`.
pub(crate) fn check_copy_range(path: &str, range: &std::ops::Range<u64>, size: u64) -> UfsResult<()> {
    check_copy_range_shape(path, range)?;
    if range.end > size {
        let reason = format!(
            "copy range {}..{} ends past the source's {size} bytes",
            range.start, range.end
        );
        return Err(UfsError::invalid(path, reason));
    }
    Ok(())
}

/// A range to copy into a part must not be empty (S3 has no way to name an empty byte range).
pub(crate) fn check_copy_range_shape(path: &str, range: &std::ops::Range<u64>) -> UfsResult<()> {
    if range.start >= range.end {
        let reason = format!("copy range {}..{} is empty", range.start, range.end);
        return Err(UfsError::invalid(path, reason));
    }
    Ok(())
}

/// A part list to complete an upload with: not empty, valid numbers, strictly ascending.
pub(crate) fn check_part_list(path: &str, parts: &[CompletedPart]) -> UfsResult<()> {
    if parts.is_empty() {
        return Err(UfsError::invalid(path, "a multipart upload needs at least one part"));
    }
    parts.iter().try_for_each(|p| check_part_number(path, p.part_number))?;
    if parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(UfsError::invalid(path, "part numbers must be strictly ascending"));
    }
    Ok(())
}
