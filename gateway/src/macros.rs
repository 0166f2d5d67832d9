//! Field-for-field conversions between s3s's operation types, which share field names but not
//! types (a GET's answer and a HEAD's, a PUT's checksums and a part's): written once here.

/// The conditional headers of an input that has the four of them.
macro_rules! conditions_of {
    ($input:expr) => {
        $crate::etag::Conditions {
            if_match: $input.if_match.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
        }
    };
}

/// The `x-amz-copy-source-if-*` headers of a copy's input, as conditions on its source.
macro_rules! copy_conditions_of {
    ($input:expr) => {
        $crate::etag::Conditions {
            if_match: $input.copy_source_if_match.as_ref(),
            if_none_match: $input.copy_source_if_none_match.as_ref(),
            if_modified_since: $input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $input.copy_source_if_unmodified_since.as_ref(),
        }
    };
}

/// The `x-amz-checksum-*` values of an input, as a [`s3s::dto::Checksum`].
macro_rules! checksum_of {
    ($input:expr) => {
        s3s::dto::Checksum {
            checksum_crc32: $input.checksum_crc32.clone(),
            checksum_crc32c: $input.checksum_crc32c.clone(),
            checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
            checksum_sha1: $input.checksum_sha1.clone(),
            checksum_sha256: $input.checksum_sha256.clone(),
            checksum_type: None,
        }
    };
}

/// An output of type `$ty` with a checksum's values and other fields.
macro_rules! with_checksum {
    ($ty:ident, $sum:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let sum: s3s::dto::Checksum = $sum;
        $ty {
            checksum_crc32: sum.checksum_crc32,
            checksum_crc32c: sum.checksum_crc32c,
            checksum_crc64nvme: sum.checksum_crc64nvme,
            checksum_sha1: sum.checksum_sha1,
            checksum_sha256: sum.checksum_sha256,
            $($field: $value,)*
            ..Default::default()
        }
    }};
}
