//! The parser: strict JSON as Python's `json.loads` reads it, minus what this module leaves to
//! Python (NaN and infinity literals, lone surrogates, invalid UTF-8, a byte order mark,
//! nesting deeper than `MAX_DEPTH`). Every failure is `Err(Outside)`: the caller answers None.

use std::borrow::Cow;
use std::collections::HashMap;

/// Deeper documents are left to Python (whose own parser has a recursion limit).
const MAX_DEPTH: usize = 256;
/// Objects with more members than this find repeated keys through a map.
const LINEAR_MEMBERS: usize = 16;

/// The input is not in the subset read here.
#[derive(Debug)]
pub struct Outside;

pub type Res<T> = Result<T, Outside>;

/// Digits of an exponent `Decimal` surely takes (it refuses some of 18 digits, as `123e` and
/// eighteen nines: an adjusted exponent past 999999999999999999).
const MAX_EXPONENT_DIGITS: usize = 17;
/// Digits of an integer read here: int64's 19 (a longer one goes the Python way).
const MAX_INT_DIGITS: usize = 19;

/// How a number is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NumKind {
    /// No fraction, no exponent.
    Int,
    /// A fraction, no exponent.
    Frac,
    /// An exponent (a float to Python, a `Decimal` with `parse_float=Decimal`).
    Exp,
}

/// A parsed JSON value; numbers keep their text, an object keeps one member per key (the last
/// value at the first key's position, as a Python dict does).
#[derive(Debug)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Num(&'a [u8], NumKind),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// How many bytes at the start of `bytes` need no attention inside a string: neither a quote,
/// a backslash nor a control character. Eight bytes at a time.
#[inline]
fn plain_run(bytes: &[u8]) -> usize {
    let mut run = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte's high bit is set where it is below 0x20, or equals `"` or `\\`; the
        // lowest such byte is exact (borrows only reach higher bytes).
        let quote = x ^ (LOW * u64::from(b'"'));
        let backslash = x ^ (LOW * u64::from(b'\\'));
        let special =
            (x.wrapping_sub(LOW * 0x20) | quote.wrapping_sub(LOW) | backslash.wrapping_sub(LOW))
                & !x
                & HIGH;
        if special != 0 {
            return run + (special.trailing_zeros() / 8) as usize;
        }
        run += 8;
    }
    run
}

/// Receives the members of the records `Parser::records` reads.
pub trait Sink<'a> {
    /// Member `key` of record `row` (rows counted from 0) is `value`.
    fn member(&mut self, row: usize, key: Cow<'a, str>, value: Val<'a>) -> Res<()>;
    /// Record `row` has no more members.
    fn end(&mut self, row: usize);
}

pub struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// The items of the arrays being read (innermost last): each array is then allocated once,
    /// at its size.
    items: Vec<Val<'a>>,
    /// The members of the objects being read, likewise.
    members: Vec<(Cow<'a, str>, Val<'a>)>,
}

impl<'a> Parser<'a> {
    /// A parser over `content`, which must be UTF-8 without a byte order mark.
    pub fn new(content: &'a [u8]) -> Res<Self> {
        let text = std::str::from_utf8(content).map_err(|_| Outside)?;
        if text.starts_with('\u{feff}') {
            return Err(Outside);
        }
        Ok(Parser {
            text,
            bytes: content,
            pos: 0,
            items: Vec::new(),
            members: Vec::new(),
        })
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Whitespace, then the end of the content.
    pub fn finish(&mut self) -> Res<()> {
        self.skip_ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(Outside)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Outside)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as Python's scanner reads numbers.
    fn number(&mut self) -> Res<(&'a [u8], NumKind)> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let whole = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Outside), // `-Infinity` among others
        };
        let mut kind = NumKind::Int;
        if self.peek() == Some(b'.') && matches!(self.bytes.get(self.pos + 1), Some(b'0'..=b'9')) {
            self.pos += 1;
            self.digits();
            kind = NumKind::Frac;
        }
        if let Some(b'e' | b'E') = self.peek() {
            let mark = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            match self.digits() {
                // Python stops the number before the `e`; what follows is then invalid.
                0 => self.pos = mark,
                // Past `Decimal`'s exponent range Python refuses the document.
                n if n > MAX_EXPONENT_DIGITS => return Err(Outside),
                _ => kind = NumKind::Exp,
            }
        }
        if kind == NumKind::Int && whole > MAX_INT_DIGITS {
            // Python may refuse it (`sys.get_int_max_str_digits`), even as a value a repeated
            // key replaces; kept, it would be past int64 and declined anyway.
            return Err(Outside);
        }
        let text = self.bytes.get(start..self.pos).ok_or(Outside)?;
        Ok((text, kind))
    }

    fn hex4(&mut self) -> Res<u32> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(Outside),
            };
            value = value * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(value)
    }

    /// A string (the opening quote next), its escapes decoded.
    pub fn string(&mut self) -> Res<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(Outside);
        }
        self.pos += 1;
        let mut run = self.pos;
        let mut owned: Option<String> = None;
        loop {
            let Some(byte) = self.peek() else {
                return Err(Outside);
            };
            match byte {
                b'"' => {
                    // Quotes and backslashes are ASCII, so every run ends on a char boundary.
                    let tail = self.text.get(run..self.pos).ok_or(Outside)?;
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut text) => {
                            text.push_str(tail);
                            Cow::Owned(text)
                        }
                    });
                }
                b'\\' => {
                    let head = self.text.get(run..self.pos).ok_or(Outside)?;
                    let text = owned.get_or_insert_with(String::new);
                    text.push_str(head);
                    self.pos += 1;
                    let escape = self.peek().ok_or(Outside)?;
                    self.pos += 1;
                    let decoded = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(Outside); // a lone high surrogate
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(Outside);
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            // A lone low surrogate is no char.
                            char::from_u32(code).ok_or(Outside)?
                        }
                        _ => return Err(Outside),
                    };
                    text.push(decoded);
                    run = self.pos;
                }
                0..=0x1f => return Err(Outside), // strict json rejects control characters
                _ => self.pos += 1 + plain_run(self.bytes.get(self.pos + 1..).unwrap_or_default()),
            }
        }
    }

    /// One value, built.
    pub fn value(&mut self, depth: usize) -> Res<Val<'a>> {
        self.skip_ws();
        match self.peek().ok_or(Outside)? {
            b'{' => self.object(depth + 1),
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(Outside);
                }
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Val::Arr(Vec::new()));
                }
                let base = self.items.len();
                loop {
                    let item = self.value(depth + 1)?;
                    self.items.push(item);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Val::Arr(self.items.split_off(base)));
                        }
                        _ => return Err(Outside),
                    }
                }
            }
            b'"' => Ok(Val::Str(self.string()?)),
            b't' => self.literal(b"true").map(|()| Val::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Val::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Val::Null),
            _ => {
                let (text, kind) = self.number()?;
                Ok(Val::Num(text, kind))
            }
        }
    }

    /// An object (the opening brace next), a repeated key keeping its first position and its
    /// last value.
    pub fn object(&mut self, depth: usize) -> Res<Val<'a>> {
        if depth > MAX_DEPTH || self.peek() != Some(b'{') {
            return Err(Outside);
        }
        self.pos += 1;
        let base = self.members.len();
        let mut index: Option<HashMap<Cow<'a, str>, usize>> = None;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Val::Obj(Vec::new()));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(Outside);
            }
            self.pos += 1;
            let value = self.value(depth)?;
            let members = self.members.get_mut(base..).ok_or(Outside)?;
            let found = match &index {
                Some(map) => map.get(&key).copied(),
                None => members.iter().position(|(k, _)| *k == key),
            };
            match found {
                Some(at) => {
                    if let Some(member) = members.get_mut(at) {
                        member.1 = value;
                    }
                }
                None => {
                    if let Some(map) = index.as_mut() {
                        map.insert(key.clone(), members.len());
                    }
                    self.members.push((key, value));
                    let members = self.members.get(base..).ok_or(Outside)?;
                    if index.is_none() && members.len() > LINEAR_MEMBERS {
                        index = Some(
                            members
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.clone(), i))
                                .collect(),
                        );
                    }
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Val::Obj(self.members.split_off(base)));
                }
                _ => return Err(Outside),
            }
        }
    }

    /// A document that is an array of objects, each object's members handed to `sink` as they
    /// are read (a repeated key as often as it occurs) rather than built; the number of
    /// objects. The document's end is not checked (`finish`).
    pub fn records(&mut self, sink: &mut impl Sink<'a>) -> Res<usize> {
        self.skip_ws();
        if self.peek() != Some(b'[') {
            return Err(Outside);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(0);
        }
        let mut row = 0;
        loop {
            self.skip_ws();
            if self.peek() != Some(b'{') {
                return Err(Outside);
            }
            self.pos += 1;
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
            } else {
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(Outside);
                    }
                    self.pos += 1;
                    let value = self.value(2)?;
                    sink.member(row, key, value)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(Outside),
                    }
                }
            }
            sink.end(row);
            row += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(row);
                }
                _ => return Err(Outside),
            }
        }
    }

    /// One value, validated but not built.
    fn skip(&mut self, depth: usize) -> Res<()> {
        self.skip_ws();
        match self.peek().ok_or(Outside)? {
            b'{' => self.skip_object(depth + 1, |parser, _key| parser.skip(depth + 1)),
            b'[' => self
                .skip_array(depth + 1, |parser| parser.skip(depth + 1))
                .map(|_| ()),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }

    /// An object, `member` reading each member's value (after its colon).
    fn skip_object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Res<()>,
    ) -> Res<()> {
        if depth > MAX_DEPTH || self.peek() != Some(b'{') {
            return Err(Outside);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(Outside);
            }
            self.pos += 1;
            member(self, key)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Outside),
            }
        }
    }

    /// An array, `item` reading each item; its number of items.
    fn skip_array(
        &mut self,
        depth: usize,
        mut item: impl FnMut(&mut Self) -> Res<()>,
    ) -> Res<usize> {
        if depth > MAX_DEPTH || self.peek() != Some(b'[') {
            return Err(Outside);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(0);
        }
        let mut count = 0;
        loop {
            item(self)?;
            count += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(count);
                }
                _ => return Err(Outside),
            }
        }
    }

    /// The value at `keys` (read from here) if it is an array of objects: its span and length.
    fn find(&mut self, keys: &[String], depth: usize) -> Res<Option<(usize, usize, usize)>> {
        self.skip_ws();
        let Some((first, rest)) = keys.split_first() else {
            if self.peek() != Some(b'[') {
                self.skip(depth)?;
                return Ok(None);
            }
            let start = self.pos;
            let mut objects = true;
            let count = self.skip_array(depth + 1, |parser| {
                parser.skip_ws();
                objects &= parser.peek() == Some(b'{');
                parser.skip(depth + 1)
            })?;
            return Ok(objects.then_some((start, self.pos, count)));
        };
        if self.peek() != Some(b'{') {
            self.skip(depth)?;
            return Ok(None);
        }
        let mut found = None;
        self.skip_object(depth + 1, |parser, key| {
            if key == first.as_str() {
                // The last occurrence wins, whatever it holds.
                found = parser.find(rest, depth + 1)?;
                Ok(())
            } else {
                parser.skip(depth + 1)
            }
        })?;
        Ok(found)
    }
}

/// See `json_locate`.
pub fn locate(content: &[u8], keys: &[String]) -> Option<(usize, usize, usize)> {
    let mut parser = Parser::new(content).ok()?;
    let found = parser.find(keys, 0).ok()?;
    parser.finish().ok()?;
    found
}
