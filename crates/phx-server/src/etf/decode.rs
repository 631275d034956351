//! Reading terms (`binary_to_term`), within [`Limits`].

use std::borrow::Cow;
use std::io::Read;

use super::tag::*;
use super::{tag_name, trimmed_le, Limits, Term, TermError, MAX_DEPTH, VERSION};

/// Decodes one whole external term (`:erlang.binary_to_term/1`) within the default
/// [`Limits`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Term, TermError> {
    let limits = Limits::default();
    decode_body(&body(bytes, &limits)?, &limits)
}

/// The encoding of the term after its version byte, inflated when it is compressed.
///
/// The size checks come first: a message over `limits.max_bytes` is refused unread, a
/// compressed one declaring more is refused before inflating, and inflating stops one
/// byte past the declared size.
pub(crate) fn body<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Cow<'a, [u8]>, TermError> {
    if bytes.len() > limits.max_bytes {
        return Err(TermError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let (&version, rest) = bytes.split_first().ok_or(TermError::Truncated)?;
    if version != VERSION {
        return Err(TermError::Version(version));
    }
    match rest.split_first() {
        Some((&COMPRESSED, compressed)) => inflate(compressed, limits).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(rest)),
    }
}

/// `COMPRESSED`: a 4-byte uncompressed size, then a zlib stream of the term.
fn inflate(compressed: &[u8], limits: &Limits) -> Result<Vec<u8>, TermError> {
    let (size, stream) = compressed
        .split_first_chunk::<4>()
        .ok_or(TermError::Truncated)?;
    let size = usize::try_from(u32::from_be_bytes(*size)).unwrap_or(usize::MAX);
    if size > limits.max_bytes {
        return Err(TermError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    // `size` is within the limit, so reserving it up front is bounded too.
    let mut out = Vec::with_capacity(size);
    let cap = u64::try_from(size).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::ZlibDecoder::new(stream)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| TermError::Inflate)?;
    // binary_to_term refuses a term that does not inflate to its declared size too.
    if out.len() != size {
        return Err(TermError::Inflate);
    }
    Ok(out)
}

/// Decodes the encoding of one term (after the version byte; see [`body`]), which must
/// take every byte.
pub(crate) fn decode_body(body: &[u8], limits: &Limits) -> Result<Term, TermError> {
    if body.len() > limits.max_bytes {
        return Err(TermError::TooLarge {
            size: body.len(),
            limit: limits.max_bytes,
        });
    }
    let mut reader = Reader { rest: body };
    let term = reader.term(0)?;
    match reader.rest.len() {
        0 => Ok(term),
        left => Err(TermError::TrailingBytes(left)),
    }
}

/// A cursor over the payload; every read checks the remaining length first.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        if n > self.rest.len() {
            return Err(TermError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TermError> {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, TermError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<usize, TermError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn u32(&mut self) -> Result<usize, TermError> {
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| TermError::Truncated)
    }

    /// A count of items that each take at least `min_bytes`: more than the remaining
    /// bytes can hold means the term is truncated, and nothing is allocated for it.
    fn count(&mut self, count: usize, min_bytes: usize) -> Result<usize, TermError> {
        if count.saturating_mul(min_bytes) > self.rest.len() {
            return Err(TermError::Truncated);
        }
        Ok(count)
    }

    fn term(&mut self, depth: usize) -> Result<Term, TermError> {
        if depth > MAX_DEPTH {
            return Err(TermError::TooDeep);
        }
        let start = self.rest;
        let tag = self.u8()?;
        match tag {
            SMALL_INTEGER_EXT => Ok(Term::Int(i64::from(self.u8()?))),
            INTEGER_EXT => Ok(Term::Int(i64::from(i32::from_be_bytes(self.array()?)))),
            SMALL_BIG_EXT => {
                let len = usize::from(self.u8()?);
                self.big(len)
            }
            LARGE_BIG_EXT => {
                let len = self.u32()?;
                self.big(len)
            }
            NEW_FLOAT_EXT => finite(f64::from_be_bytes(self.array()?)),
            FLOAT_EXT => {
                // Pre-R11 floats: 31 bytes of `printf("%.20e")`, NUL padded.
                let text = self.take(31)?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let value = std::str::from_utf8(&text[..end])
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or(TermError::Unsupported {
                        tag,
                        name: "FLOAT_EXT",
                    })?;
                finite(value)
            }
            ATOM_EXT => {
                let len = self.u16()?;
                Ok(Term::Atom(latin1(self.take(len)?)))
            }
            SMALL_ATOM_EXT => {
                let len = usize::from(self.u8()?);
                Ok(Term::Atom(latin1(self.take(len)?)))
            }
            ATOM_UTF8_EXT => {
                let len = self.u16()?;
                self.utf8_atom(len)
            }
            SMALL_ATOM_UTF8_EXT => {
                let len = usize::from(self.u8()?);
                self.utf8_atom(len)
            }
            BINARY_EXT => {
                let len = self.u32()?;
                Ok(Term::Binary(self.take(len)?.to_vec()))
            }
            NIL_EXT => Ok(Term::List(Vec::new())),
            STRING_EXT => {
                let len = self.u16()?;
                let bytes = self.take(len)?;
                Ok(Term::List(
                    bytes.iter().map(|&b| Term::Int(i64::from(b))).collect(),
                ))
            }
            LIST_EXT => {
                let len = self.u32()?;
                // Each element takes a byte, and so does the tail.
                let len = self.count(len, 1)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.term(depth + 1)?);
                }
                match self.term(depth + 1)? {
                    // The tail of a proper list is [] (NIL_EXT); a list tail (never
                    // written by term_to_binary, but read by binary_to_term) continues it.
                    Term::List(more) => {
                        items.extend(more);
                        Ok(Term::List(items))
                    }
                    Term::ImproperList(more) => {
                        items.extend(more);
                        Ok(Term::ImproperList(items))
                    }
                    tail => {
                        items.push(tail);
                        Ok(Term::ImproperList(items))
                    }
                }
            }
            SMALL_TUPLE_EXT => {
                let arity = usize::from(self.u8()?);
                self.tuple(arity, depth)
            }
            LARGE_TUPLE_EXT => {
                let arity = self.u32()?;
                self.tuple(arity, depth)
            }
            MAP_EXT => {
                let len = self.u32()?;
                let len = self.count(len, 2)?;
                let mut entries = Vec::with_capacity(len);
                for _ in 0..len {
                    let key = self.term(depth + 1)?;
                    let value = self.term(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Term::Map(entries))
            }
            PID_EXT | NEW_PID_EXT | PORT_EXT | NEW_PORT_EXT | V4_PORT_EXT | REFERENCE_EXT
            | NEW_REFERENCE_EXT | NEWER_REFERENCE_EXT | NEW_FUN_EXT | EXPORT_EXT | FUN_EXT
            | BIT_BINARY_EXT => {
                self.skip_opaque(tag, depth)?;
                let used = start.len() - self.rest.len();
                Ok(Term::Opaque {
                    tag,
                    bytes: start[..used].into(),
                })
            }
            other => Err(TermError::Unsupported {
                tag: other,
                name: tag_name(other),
            }),
        }
    }

    /// Reads past the fields of a term kept opaque (layouts from `erl_ext_dist`).
    fn skip_opaque(&mut self, tag: u8, depth: usize) -> Result<(), TermError> {
        match tag {
            // Node (an atom), then fixed-size ids and creation.
            PID_EXT => self.node_then(depth, 4 + 4 + 1),
            NEW_PID_EXT => self.node_then(depth, 4 + 4 + 4),
            PORT_EXT | REFERENCE_EXT => self.node_then(depth, 4 + 1),
            NEW_PORT_EXT => self.node_then(depth, 4 + 4),
            V4_PORT_EXT => self.node_then(depth, 8 + 4),
            NEW_REFERENCE_EXT | NEWER_REFERENCE_EXT => {
                let words = self.u16()?;
                let creation = if tag == NEW_REFERENCE_EXT { 1 } else { 4 };
                self.node_then(depth, creation + 4 * words)
            }
            // Size counts itself and everything after the tag.
            NEW_FUN_EXT => {
                let size = self.u32()?;
                let rest = size.checked_sub(4).ok_or(TermError::Truncated)?;
                self.take(rest).map(drop)
            }
            // Module, function, arity.
            EXPORT_EXT => (0..3).try_for_each(|_| self.term(depth + 1).map(drop)),
            // NumFree, then pid, module, index, uniq and the free variables.
            FUN_EXT => {
                let free = self.u32()?;
                let free = self.count(free, 1)?;
                (0..4 + free).try_for_each(|_| self.term(depth + 1).map(drop))
            }
            // Length, bits in the last byte, data.
            BIT_BINARY_EXT => {
                let len = self.u32()?;
                self.take(1)?;
                self.take(len).map(drop)
            }
            other => Err(TermError::Unsupported {
                tag: other,
                name: tag_name(other),
            }),
        }
    }

    fn node_then(&mut self, depth: usize, fixed: usize) -> Result<(), TermError> {
        self.term(depth + 1)?;
        self.take(fixed).map(drop)
    }

    fn big(&mut self, len: usize) -> Result<Term, TermError> {
        let sign = self.u8()?;
        let magnitude = trimmed_le(self.take(len)?.to_vec());
        let negative = sign != 0;
        let mut word = [0u8; 8];
        if magnitude.len() <= word.len() {
            word[..magnitude.len()].copy_from_slice(&magnitude);
            let value = u64::from_le_bytes(word);
            let small = if negative {
                // -(2^63) is the one negative value whose magnitude is past i64::MAX.
                0i64.checked_sub_unsigned(value)
            } else {
                i64::try_from(value).ok()
            };
            if let Some(small) = small {
                return Ok(Term::Int(small));
            }
        }
        Ok(Term::BigInt {
            negative: negative && !magnitude.is_empty(),
            magnitude,
        })
    }

    fn utf8_atom(&mut self, len: usize) -> Result<Term, TermError> {
        let name = std::str::from_utf8(self.take(len)?).map_err(|_| TermError::InvalidAtom)?;
        Ok(Term::Atom(name.to_owned()))
    }

    fn tuple(&mut self, arity: usize, depth: usize) -> Result<Term, TermError> {
        let arity = self.count(arity, 1)?;
        let mut items = Vec::with_capacity(arity);
        for _ in 0..arity {
            items.push(self.term(depth + 1)?);
        }
        Ok(Term::Tuple(items))
    }
}

fn finite(value: f64) -> Result<Term, TermError> {
    if value.is_finite() {
        Ok(Term::Float(value))
    } else {
        Err(TermError::NonFiniteFloat)
    }
}

/// `ATOM_EXT` names are Latin-1: each byte is the code point of the same value.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::encode::encode;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn bin(s: &str) -> Term {
        Term::Binary(s.as_bytes().to_vec())
    }

    // Expected bytes below were printed by `erlang:term_to_binary(T, [{minor_version, 2}])`
    // (the OTP 26+ default) for the Erlang term in each comment.
    #[test]
    fn integers_take_the_smallest_tag_like_term_to_binary() {
        let cases: &[(i64, &str)] = &[
            (0, "836100"),                               // 0
            (255, "8361ff"),                             // 255
            (256, "836200000100"),                       // 256
            (-1, "8362ffffffff"),                        // -1
            (2_147_483_647, "83627fffffff"),             // 2147483647
            (-2_147_483_648, "836280000000"),            // -2147483648
            (2_147_483_648, "836e040000000080"),         // 2147483648
            (-2_147_483_649, "836e040101000080"),        // -2147483649
            (1_764_000_000_000, "836e060000e897b69a01"), // 1764000000000
            (i64::MAX, "836e0800ffffffffffffff7f"),      // 9223372036854775807
            (i64::MIN, "836e08010000000000000080"),      // -9223372036854775808
        ];
        for &(value, bytes) in cases {
            assert_eq!(encode(&Term::Int(value)), hex(bytes), "encoding {value}");
            assert_eq!(
                decode(&hex(bytes)),
                Ok(Term::Int(value)),
                "decoding {value}"
            );
        }
    }

    #[test]
    fn integers_past_i64_stay_big() {
        // 18446744073709551615 (u64::MAX)
        let bytes = hex("836e0800ffffffffffffffff");
        assert_eq!(encode(&Term::from_u64(u64::MAX)), bytes);
        assert_eq!(decode(&bytes), Ok(Term::from_u64(u64::MAX)));
        // -18446744073709551616 (-(2^64))
        let bytes = hex("836e0901000000000000000001");
        let term = Term::BigInt {
            negative: true,
            magnitude: hex("000000000000000001"),
        };
        assert_eq!(decode(&bytes), Ok(term.clone()));
        assert_eq!(encode(&term), bytes);
    }

    #[test]
    fn large_big_ext_decodes() {
        // 1 bsl 2048: LARGE_BIG_EXT with 257 magnitude bytes.
        let mut bytes = hex("836f0000010100");
        bytes.extend(std::iter::repeat_n(0, 256));
        bytes.push(1);
        match decode(&bytes) {
            Ok(Term::BigInt {
                negative: false,
                magnitude,
            }) => assert_eq!(magnitude.len(), 257),
            other => panic!("unexpected {other:?}"),
        }
        let term = decode(&bytes).unwrap();
        assert_eq!(encode(&term), bytes);
    }

    #[test]
    fn atoms_are_written_as_utf8_and_read_in_every_form() {
        // nil
        assert_eq!(encode(&Term::Atom("nil".into())), hex("8377036e696c"));
        for bytes in [
            "8377036e696c",   // SMALL_ATOM_UTF8_EXT
            "837600036e696c", // ATOM_UTF8_EXT
            "836400036e696c", // ATOM_EXT (OTP < 26 default)
            "8373036e696c",   // SMALL_ATOM_EXT
        ] {
            assert_eq!(decode(&hex(bytes)), Ok(Term::Atom("nil".into())), "{bytes}");
        }
        // 'é' as ATOM_EXT (minor_version 1) is Latin-1 0xe9; as UTF-8 it is c3 a9.
        assert_eq!(decode(&hex("83640001e9")), Ok(Term::Atom("é".into())));
        assert_eq!(encode(&Term::Atom("é".into())), hex("837702c3a9"));
        assert_eq!(decode(&hex("837702c3")), Err(TermError::Truncated));
        assert_eq!(decode(&hex("837701ff")), Err(TermError::InvalidAtom));
    }

    #[test]
    fn floats_use_new_float_ext_and_old_float_ext_still_reads() {
        // 3.5
        assert_eq!(encode(&Term::Float(3.5)), hex("8346400c000000000000"));
        assert_eq!(decode(&hex("8346400c000000000000")), Ok(Term::Float(3.5)));
        // term_to_binary(3.5, [{minor_version, 0}])
        let old = hex(concat!(
            "8363332e3530303030303030303030303030303030303030652b3030",
            "0000000000"
        ));
        assert_eq!(decode(&old), Ok(Term::Float(3.5)));
        // A NaN bit pattern never comes from Erlang.
        assert_eq!(
            decode(&hex("83467ff8000000000000")),
            Err(TermError::NonFiniteFloat)
        );
    }

    #[test]
    fn lists_of_bytes_are_strings_and_others_are_lists() {
        // [] , [1,2,3] , [1,<<"two">>,3.5] , [256]
        assert_eq!(encode(&Term::List(vec![])), hex("836a"));
        let bytes = Term::List(vec![Term::Int(1), Term::Int(2), Term::Int(3)]);
        assert_eq!(encode(&bytes), hex("836b0003010203"));
        assert_eq!(decode(&hex("836b0003010203")), Ok(bytes));
        let mixed = Term::List(vec![Term::Int(1), bin("two"), Term::Float(3.5)]);
        let mixed_bytes = hex("836c0000000361016d0000000374776f46400c0000000000006a");
        assert_eq!(encode(&mixed), mixed_bytes);
        assert_eq!(decode(&mixed_bytes), Ok(mixed));
        assert_eq!(
            encode(&Term::List(vec![Term::Int(256)])),
            hex("836c0000000162000001006a")
        );
    }

    #[test]
    fn long_byte_lists_fall_back_to_list_ext() {
        let items = vec![Term::Int(7); 65_536];
        let encoded = encode(&Term::List(items.clone()));
        assert_eq!(encoded[1], LIST_EXT);
        assert_eq!(decode(&encoded), Ok(Term::List(items)));
    }

    #[test]
    fn improper_lists_keep_their_tail() {
        // [1 | 2]
        let bytes = hex("836c0000000161016102");
        let term = Term::ImproperList(vec![Term::Int(1), Term::Int(2)]);
        assert_eq!(decode(&bytes), Ok(term.clone()));
        assert_eq!(encode(&term), bytes);
        // [1 | [2]] written with a list tail reads as the proper list [1, 2].
        assert_eq!(
            decode(&hex("836c0000000161016c0000000161026a")),
            Ok(Term::List(vec![Term::Int(1), Term::Int(2)]))
        );
    }

    #[test]
    fn tuples_and_maps_round_trip() {
        // {<<"a">>, #{<<"id">> => 7, <<"name">> => <<"bob">>}}
        let term = Term::Tuple(vec![
            bin("a"),
            Term::Map(vec![(bin("id"), Term::Int(7)), (bin("name"), bin("bob"))]),
        ]);
        let bytes = hex(concat!(
            "8368026d000000016174000000026d00000002696461076d",
            "000000046e616d656d00000003626f62"
        ));
        assert_eq!(encode(&term), bytes);
        assert_eq!(decode(&bytes), Ok(term));
        let large = Term::Tuple(vec![Term::Int(0); 256]);
        let encoded = encode(&large);
        assert_eq!(encoded[1], LARGE_TUPLE_EXT);
        assert_eq!(decode(&encoded), Ok(large));
    }

    #[test]
    fn pids_references_funs_and_bitstrings_are_kept_opaque() {
        let cases: &[(&str, &str)] = &[
            // <0.9.0>
            (
                "8358770d6e6f6e6f6465406e6f686f7374000000090000000000000000",
                "NEW_PID_EXT",
            ),
            // make_ref()
            (
                "835a0003770d6e6f6e6f6465406e6f686f737400000000000122d654540002de72e20b",
                "NEWER_REFERENCE_EXT",
            ),
            // fun erlang:self/0
            ("8371770665726c616e67770473656c666100", "EXPORT_EXT"),
            // <<1:3>>
            ("834d000000010320", "BIT_BINARY_EXT"),
        ];
        for &(bytes, name) in cases {
            let bytes = hex(bytes);
            match decode(&bytes) {
                Ok(term @ Term::Opaque { tag, .. }) => {
                    assert_eq!(tag_name(tag), name);
                    assert_eq!(encode(&term), bytes, "{name} is written back unchanged");
                }
                other => panic!("{name}: {other:?}"),
            }
            // Cut anywhere, it is truncated, not misread.
            for len in 2..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "{name} cut at {len}");
            }
        }
        // The distribution header is no term.
        assert_eq!(
            decode(&hex("834400")),
            Err(TermError::Unsupported {
                tag: 68,
                name: "DIST_HEADER"
            })
        );
    }

    #[test]
    fn compressed_terms_inflate_within_the_limit() {
        // term_to_binary(lists:duplicate(100, 0), [compressed])
        let bytes = hex("835000000067789ccb664861a003000052e800d0");
        assert_eq!(decode(&bytes), Ok(Term::List(vec![Term::Int(0); 100])));
        // The same, claiming 104 bytes: it inflates to 103.
        let mut lying = bytes.clone();
        lying[5] = 104;
        assert_eq!(decode(&lying), Err(TermError::Inflate));
        // Claiming 102: refused once the 103rd byte comes out.
        lying[5] = 102;
        assert_eq!(decode(&lying), Err(TermError::Inflate));
        // A declared size past the limit is refused before inflating.
        let limits = Limits { max_bytes: 100 };
        assert_eq!(
            body(&bytes, &limits).map(|b| b.len()),
            Err(TermError::TooLarge {
                size: 103,
                limit: 100
            })
        );
        assert_eq!(decode(&hex("8350000000")), Err(TermError::Truncated));
        assert_eq!(decode(&hex("835000000003000000")), Err(TermError::Inflate));
    }

    #[test]
    fn a_zlib_bomb_is_refused_after_inflating_at_most_its_declared_size() {
        // 64 MiB of zeros compress to some 64 KiB; the header claims 1 000 bytes.
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let stream = encoder.finish().unwrap();
        let mut bytes = vec![VERSION, COMPRESSED];
        bytes.extend_from_slice(&1_000u32.to_be_bytes());
        bytes.extend_from_slice(&stream);
        let limits = Limits { max_bytes: 1 << 20 };
        // `body` holds at most the declared size plus one byte before refusing.
        assert_eq!(
            body(&bytes, &limits).map(|b| b.len()),
            Err(TermError::Inflate)
        );
        // Declaring the true size is refused before inflating anything.
        bytes[2..6].copy_from_slice(&(64u32 << 20).to_be_bytes());
        assert_eq!(
            body(&bytes, &limits).map(|b| b.len()),
            Err(TermError::TooLarge {
                size: 64 << 20,
                limit: 1 << 20
            })
        );
    }

    #[test]
    fn messages_over_the_limit_are_refused_unread() {
        let limits = Limits { max_bytes: 8 };
        let bytes = encode(&Term::Binary(vec![0; 8]));
        assert_eq!(
            body(&bytes, &limits).map(|b| b.len()),
            Err(TermError::TooLarge {
                size: bytes.len(),
                limit: 8
            })
        );
    }

    #[test]
    fn lengths_past_the_input_are_truncation_not_allocation() {
        for bytes in [
            "836cffffffff",   // list of 4 billion
            "8374ffffffff",   // map of 4 billion
            "8369ffffffff",   // tuple of 4 billion
            "836dffffffff61", // binary of 4 GiB
            "836fffffffff00", // big integer of 4 GiB
            "836b00ff41",     // string of 255
            "83",             // nothing
            "8362000001",     // 3 of 4 integer bytes
            "8370ffffffff",   // fun of 4 GiB
            "834dffffffff01", // bitstring of 4 GiB
            "8375ffffffff",   // fun with 4 billion free variables
        ] {
            assert_eq!(decode(&hex(bytes)), Err(TermError::Truncated), "{bytes}");
        }
    }

    #[test]
    fn version_byte_and_trailing_bytes_are_checked() {
        assert_eq!(decode(&hex("8461")), Err(TermError::Version(0x84)));
        assert_eq!(decode(&[]), Err(TermError::Truncated));
        assert_eq!(decode(&hex("8361016a")), Err(TermError::TrailingBytes(1)));
    }

    #[test]
    fn nesting_is_bounded() {
        // [[[...[]...]]] nested past the bound.
        let mut bytes = vec![VERSION];
        for _ in 0..=MAX_DEPTH {
            bytes.extend_from_slice(&hex("6c00000001"));
        }
        bytes.push(NIL_EXT);
        bytes.extend(std::iter::repeat_n(NIL_EXT, MAX_DEPTH + 1));
        assert_eq!(decode(&bytes), Err(TermError::TooDeep));
        // Improper tails nest too: [1 | [1 | [1 | ...]]] written as tails.
        let mut bytes = vec![VERSION];
        for _ in 0..=MAX_DEPTH {
            bytes.extend_from_slice(&hex("6c000000016101"));
        }
        bytes.push(NIL_EXT);
        assert_eq!(decode(&bytes), Err(TermError::TooDeep));
    }
}
