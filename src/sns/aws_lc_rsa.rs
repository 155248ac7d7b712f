//! RSASSA-PKCS1-v1_5 signing with AWS-LC (`aws-lc-sys`), for SNS message signatures:
//! the only well-kept Rust-reachable RSA that signs SHA-1 (SignatureVersion 1, SNS's
//! default) fast. ring and aws-lc-rs sign SHA-256 only, and RustCrypto's `rsa` takes
//! about 2.7 ms a signature here against AWS-LC's 0.25 ms (benches/RESULTS.md, "What
//! one SNS message signature costs").
//!
//! The FFI is three calls: parse a PKCS#1 DER private key, sign a digest, free the key.
//! AWS-LC documents `RSA_sign` as non-mutating, safe to call on one key from several
//! threads at once (`openssl/rsa.h`), which is how the shards' blocking threads share
//! the broker's one key.

use aws_lc_sys as ffi;
use std::ptr::NonNull;

/// The hash a digest was made with, as the signature names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn nid(self) -> i32 {
        match self {
            Hash::Sha1 => ffi::NID_sha1,
            Hash::Sha256 => ffi::NID_sha256,
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }
}

/// An RSA private key held by AWS-LC.
pub struct RsaKey {
    rsa: NonNull<ffi::RSA>,
    /// Bytes of a signature (the modulus).
    size: usize,
}

// SAFETY: the key is never mutated after parsing; AWS-LC allows concurrent non-mutating
// calls (RSA_sign, RSA_size) on one RSA from several threads, and RSA_free only runs
// once, on drop, when no other reference is left.
unsafe impl Send for RsaKey {}
unsafe impl Sync for RsaKey {}

impl RsaKey {
    /// A key from its PKCS#1 `RSAPrivateKey` DER encoding.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<RsaKey, String> {
        // SAFETY: AWS-LC reads `der.len()` bytes from `der`, which outlives the call,
        // and returns a new RSA (owned by us from here) or null.
        let rsa = unsafe { ffi::RSA_private_key_from_bytes(der.as_ptr(), der.len()) };
        let rsa = NonNull::new(rsa).ok_or("AWS-LC refuses the RSA private key")?;
        // SAFETY: `rsa` is a valid key.
        let size = unsafe { ffi::RSA_size(rsa.as_ptr()) } as usize;
        Ok(RsaKey { rsa, size })
    }

    /// The signature of `digest`, a `hash` of the signed text.
    pub fn sign(&self, hash: Hash, digest: &[u8]) -> Result<Vec<u8>, String> {
        if digest.len() != hash.digest_len() {
            return Err(format!(
                "a {hash:?} digest is {} bytes, not {}",
                hash.digest_len(),
                digest.len()
            ));
        }
        let mut out = vec![0u8; self.size];
        let mut written: std::os::raw::c_uint = 0;
        // SAFETY: `out` has RSA_size bytes, the most RSA_sign writes; `digest` and
        // `written` outlive the call; the key is valid and RSA_sign does not mutate it.
        let ok = unsafe {
            ffi::RSA_sign(
                hash.nid(),
                digest.as_ptr(),
                digest.len(),
                out.as_mut_ptr(),
                &mut written,
                self.rsa.as_ptr(),
            )
        };
        if ok != 1 {
            return Err("AWS-LC could not sign".into());
        }
        out.truncate(written as usize);
        Ok(out)
    }
}

impl Drop for RsaKey {
    fn drop(&mut self) {
        // SAFETY: the key was made by RSA_private_key_from_bytes and is freed once.
        unsafe { ffi::RSA_free(self.rsa.as_ptr()) }
    }
}
