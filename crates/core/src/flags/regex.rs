//! Regular expressions for the `REGEX` constraint operator.
//!
//! Unleash's `REGEX` operator takes the syntax of Rust's `regex` crate: no look-around
//! and no back-references, so that a match takes time linear in the text. The core
//! takes no dependency for it, so this module holds a small engine with the same
//! guarantee: a pattern is parsed into a tree, compiled into a program of character
//! tests and jumps, and run as a Pike VM, which keeps at most one thread per program
//! instruction and so never backtracks. A context value chosen by a user can therefore
//! not make an evaluation slow.
//!
//! Supported: literals and escaped punctuation; `.`; classes `[a-z]`, `[^...]`, with
//! `\d \w \s` (and their negations) and POSIX classes such as `[[:alpha:]]`; anchors
//! `^ $ \A \z`; word boundaries `\b \B`; groups `( )`, `(?: )`, `(?P<name> )` and
//! `(?<name> )`; alternation; the repetitions `* + ? {n} {n,} {n,m}`, greedy or lazy;
//! the flags `i`, `m`, `s` (and the no-op `u` and `U`) as `(?ims)` or `(?i: )`; and
//! the escapes `\n \t \r \f \v \a \e \xHH \x{H..} \u{H..}`. Anything else, notably
//! look-around, back-references and `\p{..}` classes, is refused with a reason rather
//! than read as something else. `\d`, `\w` and `\s` follow Rust's `char::is_numeric`,
//! `char::is_alphanumeric` (plus `_`) and `char::is_whitespace`.

use std::fmt;

/// A compiled pattern.
#[derive(Clone)]
pub struct Regex {
    pattern: String,
    case_insensitive: bool,
    program: Vec<Inst>,
}

impl PartialEq for Regex {
    /// Two patterns are the same when they were written the same way.
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.case_insensitive == other.case_insensitive
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regex")
            .field("pattern", &self.pattern)
            .field("case_insensitive", &self.case_insensitive)
            .finish()
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {pattern:?} is not supported at character {position}: {reason}")]
pub struct RegexError {
    /// The pattern as given.
    pub pattern: String,
    /// The 1-based position (in characters) where reading stopped.
    pub position: usize,
    /// What is wrong there.
    pub reason: String,
}

/// A pattern compiles to at most this many instructions, which bounds both memory and
/// the work per character of text (`a{1000}{1000}` would otherwise be a million).
const MAX_PROGRAM: usize = 20_000;
/// Groups nest at most this deep, which bounds the parser's recursion.
const MAX_DEPTH: usize = 64;
/// The largest count a `{n,m}` repetition may name.
const MAX_REPEAT: u32 = 1_000;

impl Regex {
    /// Compiles `pattern`; with `case_insensitive` the whole pattern ignores case, as
    /// if it started with `(?i)`.
    ///
    /// # Errors
    ///
    /// A [`RegexError`] saying where and why the pattern is malformed or uses a
    /// feature this engine does not have.
    pub fn new(pattern: &str, case_insensitive: bool) -> Result<Regex, RegexError> {
        let mut parser = Parser {
            pattern,
            chars: pattern.chars().collect(),
            position: 0,
            flags: Flags {
                case_insensitive,
                ..Flags::default()
            },
            depth: 0,
        };
        let tree = parser.alternation()?;
        if parser.position < parser.chars.len() {
            // Only an unopened `)` stops the top-level alternation early.
            return Err(parser.error("this `)` closes no group"));
        }
        let mut compiler = Compiler {
            program: Vec::new(),
        };
        compiler
            .node(&tree)
            .and_then(|()| compiler.push(Inst::Match))
            .map_err(|reason| RegexError {
                pattern: pattern.to_string(),
                position: 1,
                reason,
            })?;
        Ok(Regex {
            pattern: pattern.to_string(),
            case_insensitive,
            program: compiler.program,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches anywhere in `text` (anchor it with `^` and `$` to
    /// match the whole text).
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let size = self.program.len();
        let mut current = ThreadSet::new(size);
        let mut next = ThreadSet::new(size);
        let mut stack = Vec::new();
        for at in 0..=chars.len() {
            // Starting a thread at every position makes the search unanchored.
            if self.add_thread(&mut current, 0, at, &chars, &mut stack) {
                return true;
            }
            let Some(&c) = chars.get(at) else {
                break;
            };
            next.clear();
            for index in 0..current.len() {
                let pc = current.get(index);
                if let Inst::Test(test) = &self.program[pc]
                    && test.matches(c)
                    && self.add_thread(&mut next, pc + 1, at + 1, &chars, &mut stack)
                {
                    return true;
                }
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        false
    }

    /// Follows every jump, split and assertion from `pc` at position `at`, adding the
    /// character tests reached to `set`. Returns true when `Match` is reached.
    fn add_thread(
        &self,
        set: &mut ThreadSet,
        pc: usize,
        at: usize,
        chars: &[char],
        stack: &mut Vec<usize>,
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !set.insert(pc) {
                continue;
            }
            match &self.program[pc] {
                Inst::Match => return true,
                Inst::Jump(target) => stack.push(*target),
                Inst::Split(first, second) => {
                    stack.push(*second);
                    stack.push(*first);
                }
                Inst::Assert(look) => {
                    if look.holds(chars, at) {
                        stack.push(pc + 1);
                    }
                }
                Inst::Test(_) => {}
            }
        }
        false
    }
}

/// The instructions visited at one position, in insertion order, without repeats.
struct ThreadSet {
    seen: Vec<bool>,
    order: Vec<usize>,
}

impl ThreadSet {
    fn new(size: usize) -> Self {
        Self {
            seen: vec![false; size],
            order: Vec::with_capacity(size),
        }
    }

    fn insert(&mut self, pc: usize) -> bool {
        if self.seen[pc] {
            return false;
        }
        self.seen[pc] = true;
        self.order.push(pc);
        true
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn get(&self, index: usize) -> usize {
        self.order[index]
    }

    fn clear(&mut self) {
        for &pc in &self.order {
            self.seen[pc] = false;
        }
        self.order.clear();
    }
}

// ---------------------------------------------------------------------------------
// The program.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Inst {
    /// Consume one character that passes the test.
    Test(CharTest),
    /// Continue at both targets.
    Split(usize, usize),
    /// Continue at the target.
    Jump(usize),
    /// Continue at the next instruction if the assertion holds here.
    Assert(Look),
    /// The pattern has matched.
    Match,
}

#[derive(Debug, Clone)]
enum CharTest {
    /// Exactly this character.
    Char(char),
    /// This character in any case.
    Folded(char),
    /// Any character, or any but `\n`.
    Any { newline: bool },
    /// A character class.
    Class(Class),
}

impl CharTest {
    fn matches(&self, c: char) -> bool {
        match self {
            CharTest::Char(expected) => c == *expected,
            CharTest::Folded(expected) => case_variants(c).any(|v| v == *expected),
            CharTest::Any { newline } => *newline || c != '\n',
            CharTest::Class(class) => class.matches(c),
        }
    }
}

/// The character and its lowercase and uppercase forms (where each is one character).
fn case_variants(c: char) -> impl Iterator<Item = char> {
    std::iter::once(c)
        .chain(single(c.to_lowercase()))
        .chain(single(c.to_uppercase()))
}

/// The only character of a case mapping, or `None` when it maps to several (such as
/// `ß` to `SS`), which a one-character test cannot match.
fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    let first = mapped.next();
    if mapped.next().is_some() { None } else { first }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    StartText,
    EndText,
    StartLine,
    EndLine,
    WordBoundary,
    NotWordBoundary,
}

impl Look {
    fn holds(self, chars: &[char], at: usize) -> bool {
        let before = at.checked_sub(1).map(|index| chars[index]);
        let after = chars.get(at).copied();
        let word = |c: Option<char>| c.is_some_and(is_word);
        match self {
            Look::StartText => at == 0,
            Look::EndText => at == chars.len(),
            Look::StartLine => before.is_none_or(|c| c == '\n'),
            Look::EndLine => after.is_none_or(|c| c == '\n'),
            Look::WordBoundary => word(before) != word(after),
            Look::NotWordBoundary => word(before) == word(after),
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[derive(Debug, Clone)]
struct Class {
    items: Vec<ClassItem>,
    negated: bool,
    folded: bool,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let hit = |c: char| self.items.iter().any(|item| item.matches(c));
        let found = if self.folded {
            case_variants(c).any(hit)
        } else {
            hit(c)
        };
        found != self.negated
    }
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
    Posix(PosixClass, bool),
}

impl ClassItem {
    fn matches(&self, c: char) -> bool {
        match *self {
            ClassItem::Range(low, high) => (low..=high).contains(&c),
            ClassItem::Digit(negated) => c.is_numeric() != negated,
            ClassItem::Word(negated) => is_word(c) != negated,
            ClassItem::Space(negated) => c.is_whitespace() != negated,
            ClassItem::Posix(class, negated) => class.matches(c) != negated,
        }
    }
}

/// The ASCII classes of POSIX, as `[[:name:]]` writes them.
#[derive(Debug, Clone, Copy)]
enum PosixClass {
    Alnum,
    Alpha,
    Ascii,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Word,
    Xdigit,
}

impl PosixClass {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "alnum" => PosixClass::Alnum,
            "alpha" => PosixClass::Alpha,
            "ascii" => PosixClass::Ascii,
            "blank" => PosixClass::Blank,
            "cntrl" => PosixClass::Cntrl,
            "digit" => PosixClass::Digit,
            "graph" => PosixClass::Graph,
            "lower" => PosixClass::Lower,
            "print" => PosixClass::Print,
            "punct" => PosixClass::Punct,
            "space" => PosixClass::Space,
            "upper" => PosixClass::Upper,
            "word" => PosixClass::Word,
            "xdigit" => PosixClass::Xdigit,
            _ => return None,
        })
    }

    fn matches(self, c: char) -> bool {
        match self {
            PosixClass::Alnum => c.is_ascii_alphanumeric(),
            PosixClass::Alpha => c.is_ascii_alphabetic(),
            PosixClass::Ascii => c.is_ascii(),
            PosixClass::Blank => c == ' ' || c == '\t',
            PosixClass::Cntrl => c.is_ascii_control(),
            PosixClass::Digit => c.is_ascii_digit(),
            PosixClass::Graph => c.is_ascii_graphic(),
            PosixClass::Lower => c.is_ascii_lowercase(),
            PosixClass::Print => c.is_ascii_graphic() || c == ' ',
            PosixClass::Punct => c.is_ascii_punctuation(),
            PosixClass::Space => matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'),
            PosixClass::Upper => c.is_ascii_uppercase(),
            PosixClass::Word => c.is_ascii_alphanumeric() || c == '_',
            PosixClass::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

// ---------------------------------------------------------------------------------
// The syntax tree and its parser.
// ---------------------------------------------------------------------------------

#[derive(Debug)]
enum Node {
    Test(CharTest),
    Assert(Look),
    Concat(Vec<Node>),
    Alternate(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    case_insensitive: bool,
    multi_line: bool,
    dot_matches_newline: bool,
}

struct Parser<'a> {
    pattern: &'a str,
    chars: Vec<char>,
    position: usize,
    flags: Flags,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> RegexError {
        RegexError {
            pattern: self.pattern.to_string(),
            position: self.position + 1,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self, what: &str) -> Result<char, RegexError> {
        let c = self
            .peek()
            .ok_or_else(|| self.error(format!("the pattern ends inside {what}")))?;
        self.position += 1;
        Ok(c)
    }

    fn alternation(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concatenation()?];
        while self.eat('|') {
            branches.push(self.concatenation()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Concat(Vec::new()))
        } else {
            Node::Alternate(branches)
        })
    }

    fn concatenation(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            if let Some(atom) = self.atom()? {
                items.push(self.repetitions(atom)?);
            }
        }
        Ok(Node::Concat(items))
    }

    /// One atom, or `None` for a group that only sets flags, such as `(?i)`.
    fn atom(&mut self) -> Result<Option<Node>, RegexError> {
        let c = self.next("an expression")?;
        let node = match c {
            '(' => return self.group(),
            '[' => Node::Test(CharTest::Class(self.class()?)),
            '.' => Node::Test(CharTest::Any {
                newline: self.flags.dot_matches_newline,
            }),
            '^' => Node::Assert(if self.flags.multi_line {
                Look::StartLine
            } else {
                Look::StartText
            }),
            '$' => Node::Assert(if self.flags.multi_line {
                Look::EndLine
            } else {
                Look::EndText
            }),
            '\\' => self.escape()?,
            '*' | '+' | '?' | '{' => {
                self.position -= 1;
                return Err(self.error(format!("`{c}` has nothing to repeat")));
            }
            literal => self.literal(literal),
        };
        Ok(Some(node))
    }

    fn literal(&self, c: char) -> Node {
        if self.flags.case_insensitive && case_variants(c).any(|v| v != c) {
            Node::Test(CharTest::Folded(c))
        } else {
            Node::Test(CharTest::Char(c))
        }
    }

    fn group(&mut self) -> Result<Option<Node>, RegexError> {
        let open = self.position - 1;
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("groups nest more than {MAX_DEPTH} deep")));
        }
        let saved = self.flags;
        if self.eat('?') {
            match self.peek() {
                Some('=' | '!') => return Err(self.error("look-ahead is not supported")),
                Some('<') if matches!(self.peek_at(1), Some('=' | '!')) => {
                    return Err(self.error("look-behind is not supported"));
                }
                Some('P') if self.peek_at(1) == Some('<') => {
                    self.position += 2;
                    self.group_name()?;
                }
                Some('<') => {
                    self.position += 1;
                    self.group_name()?;
                }
                Some(':') => self.position += 1,
                _ => {
                    // Flags: `(?flags)` sets them until the enclosing group ends;
                    // `(?flags:...)` sets them inside its own group only.
                    if self.flag_list()? {
                        return Ok(None);
                    }
                }
            }
        }
        self.depth += 1;
        let inner = self.alternation()?;
        self.depth -= 1;
        if !self.eat(')') {
            self.position = open;
            return Err(self.error("this `(` is never closed"));
        }
        self.flags = saved;
        Ok(Some(inner))
    }

    /// Reads the flags after `(?`; returns true for `(?flags)`, false for `(?flags:`.
    fn flag_list(&mut self) -> Result<bool, RegexError> {
        let mut on = true;
        loop {
            let c = self.next("a flag group")?;
            match c {
                'i' => self.flags.case_insensitive = on,
                'm' => self.flags.multi_line = on,
                's' => self.flags.dot_matches_newline = on,
                // Unicode is always on, and greediness does not change whether a
                // pattern matches, which is all this engine answers.
                'u' | 'U' => {}
                '-' if on => on = false,
                ')' => return Ok(true),
                ':' => return Ok(false),
                'x' => {
                    self.position -= 1;
                    return Err(self.error("the `x` (verbose) flag is not supported"));
                }
                other => {
                    self.position -= 1;
                    return Err(self.error(format!("unknown flag `{other}`")));
                }
            }
        }
    }

    fn group_name(&mut self) -> Result<(), RegexError> {
        let start = self.position;
        loop {
            match self.next("a group name")? {
                '>' if self.position - 1 > start => return Ok(()),
                c if c.is_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']' => {}
                _ => {
                    self.position -= 1;
                    return Err(
                        self.error("a group name is letters, digits and `_`, closed by `>`")
                    );
                }
            }
        }
    }

    fn repetitions(&mut self, mut node: Node) -> Result<Node, RegexError> {
        let mut repeated = false;
        while let Some(c) = self.peek() {
            let (min, max) = match c {
                '*' => (0, None),
                '+' => (1, None),
                '?' => (0, Some(1)),
                '{' => {
                    self.position += 1;
                    let bounds = self.counted()?;
                    self.position -= 1;
                    bounds
                }
                _ => break,
            };
            if repeated {
                return Err(self.error("a repetition cannot be repeated; wrap it in a group"));
            }
            self.position += 1;
            // A trailing `?` makes the repetition lazy, which does not change whether
            // the pattern matches.
            self.eat('?');
            repeated = true;
            node = Node::Repeat {
                node: Box::new(node),
                min,
                max,
            };
        }
        Ok(node)
    }

    /// Reads `n}`, `n,}` or `n,m}` after `{`, leaving the position on the `}`.
    fn counted(&mut self) -> Result<(u32, Option<u32>), RegexError> {
        let min = self
            .number()?
            .ok_or_else(|| self.error("`{` must be followed by a count, as in a{2} or a{2,4}"))?;
        let max = if self.eat(',') {
            self.number()?
        } else {
            Some(min)
        };
        if self.peek() != Some('}') {
            return Err(self.error("a counted repetition is closed by `}`, as in a{2,4}"));
        }
        self.position += 1;
        if let Some(max) = max
            && max < min
        {
            return Err(self.error(format!(
                "{{{min},{max}}} counts down: put the smaller number first"
            )));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<Option<u32>, RegexError> {
        let start = self.position;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.position += 1;
        }
        if start == self.position {
            return Ok(None);
        }
        let digits: String = self.chars[start..self.position].iter().collect();
        match digits.parse::<u32>() {
            Ok(count) if count <= MAX_REPEAT => Ok(Some(count)),
            _ => Err(self.error(format!("a repetition count is at most {MAX_REPEAT}"))),
        }
    }

    fn escape(&mut self) -> Result<Node, RegexError> {
        let c = self.next("an escape")?;
        let class = |item| {
            Node::Test(CharTest::Class(Class {
                items: vec![item],
                negated: false,
                folded: false,
            }))
        };
        Ok(match c {
            'd' | 'D' => class(ClassItem::Digit(c == 'D')),
            'w' | 'W' => class(ClassItem::Word(c == 'W')),
            's' | 'S' => class(ClassItem::Space(c == 'S')),
            'b' => Node::Assert(Look::WordBoundary),
            'B' => Node::Assert(Look::NotWordBoundary),
            'A' => Node::Assert(Look::StartText),
            'z' => Node::Assert(Look::EndText),
            _ => {
                let literal = self.escaped_char(c)?;
                self.literal(literal)
            }
        })
    }

    /// The character an escape such as `\n`, `\x41` or `\.` stands for.
    fn escaped_char(&mut self, c: char) -> Result<char, RegexError> {
        self.position -= 1;
        let escaped = match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\x0c',
            'v' => '\x0b',
            'a' => '\x07',
            'e' => '\x1b',
            'x' | 'u' => {
                self.position += 1;
                return self.hex_escape(c);
            }
            '1'..='9' => return Err(self.error("back-references are not supported")),
            'p' | 'P' => return Err(self.error("Unicode classes (\\p, \\P) are not supported")),
            c if c.is_ascii_punctuation() || c == ' ' => c,
            other => return Err(self.error(format!("unknown escape `\\{other}`"))),
        };
        self.position += 1;
        Ok(escaped)
    }

    /// `\xHH`, `\uHHHH`, or either with braces: `\x{H..}`.
    fn hex_escape(&mut self, kind: char) -> Result<char, RegexError> {
        let braced = self.eat('{');
        let start = self.position;
        let width = if kind == 'x' { 2 } else { 4 };
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit())
            && (braced || self.position - start < width)
        {
            self.position += 1;
        }
        let digits: String = self.chars[start..self.position].iter().collect();
        if (braced && !self.eat('}')) || digits.is_empty() || (!braced && digits.len() != width) {
            return Err(self.error(format!(
                "`\\{kind}` takes {width} hex digits, or hex digits in braces as in \\{kind}{{1F600}}"
            )));
        }
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.error(format!("\\{kind}{{{digits}}} is not a character")))
    }

    /// A class after its `[`, up to and including its `]`.
    fn class(&mut self) -> Result<Class, RegexError> {
        let open = self.position - 1;
        let negated = self.eat('^');
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                self.position = open;
                return Err(self.error("this `[` is never closed"));
            };
            if c == ']' && !first {
                self.position += 1;
                break;
            }
            first = false;
            if c == '[' && self.peek_at(1) == Some(':') {
                items.push(self.posix_class()?);
                continue;
            }
            if c == '[' {
                return Err(
                    self.error("nested classes are not supported; escape a literal `[` as \\[")
                );
            }
            if matches!(
                (c, self.peek_at(1)),
                ('&', Some('&')) | ('-', Some('-')) | ('~', Some('~'))
            ) {
                return Err(self.error("class set operations (&&, --, ~~) are not supported"));
            }
            self.position += 1;
            let low = if c == '\\' {
                let escaped = self.next("an escape")?;
                match escaped {
                    'd' | 'D' => {
                        items.push(ClassItem::Digit(escaped == 'D'));
                        continue;
                    }
                    'w' | 'W' => {
                        items.push(ClassItem::Word(escaped == 'W'));
                        continue;
                    }
                    's' | 'S' => {
                        items.push(ClassItem::Space(escaped == 'S'));
                        continue;
                    }
                    other => self.escaped_char(other)?,
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.position += 1;
                let c = self.next("a class")?;
                let high = if c == '\\' {
                    let escaped = self.next("an escape")?;
                    self.escaped_char(escaped)?
                } else {
                    c
                };
                if high < low {
                    return Err(self.error(format!("the range {low}-{high} runs backwards")));
                }
                items.push(ClassItem::Range(low, high));
            } else {
                items.push(ClassItem::Range(low, low));
            }
        }
        Ok(Class {
            items,
            negated,
            folded: self.flags.case_insensitive,
        })
    }

    /// `[:name:]` or `[:^name:]`, with the position on its first `[`.
    fn posix_class(&mut self) -> Result<ClassItem, RegexError> {
        let start = self.position;
        self.position += 2;
        let negated = self.eat('^');
        let name_start = self.position;
        while self.peek().is_some_and(|c| c.is_ascii_lowercase()) {
            self.position += 1;
        }
        let name: String = self.chars[name_start..self.position].iter().collect();
        if !(self.eat(':') && self.eat(']')) {
            self.position = start;
            return Err(self.error("a POSIX class is written [:name:], as in [[:alpha:]]"));
        }
        let class = PosixClass::named(&name).ok_or_else(|| {
            self.error(format!(
                "unknown POSIX class [:{name}:]; the classes are alnum, alpha, ascii, blank, cntrl, digit, graph, lower, print, punct, space, upper, word and xdigit"
            ))
        })?;
        Ok(ClassItem::Posix(class, negated))
    }
}

// ---------------------------------------------------------------------------------
// From tree to program.
// ---------------------------------------------------------------------------------

struct Compiler {
    program: Vec<Inst>,
}

impl Compiler {
    fn push(&mut self, inst: Inst) -> Result<(), String> {
        if self.program.len() >= MAX_PROGRAM {
            return Err(format!(
                "the pattern is too large once its repetitions are expanded (over {MAX_PROGRAM} steps)"
            ));
        }
        self.program.push(inst);
        Ok(())
    }

    fn pc(&self) -> usize {
        self.program.len()
    }

    fn node(&mut self, node: &Node) -> Result<(), String> {
        match node {
            Node::Test(test) => self.push(Inst::Test(test.clone())),
            Node::Assert(look) => self.push(Inst::Assert(*look)),
            Node::Concat(items) => items.iter().try_for_each(|item| self.node(item)),
            Node::Alternate(branches) => {
                let mut exits = Vec::new();
                for (index, branch) in branches.iter().enumerate() {
                    if index + 1 == branches.len() {
                        self.node(branch)?;
                    } else {
                        let split = self.pc();
                        self.push(Inst::Split(split + 1, usize::MAX))?;
                        self.node(branch)?;
                        exits.push(self.pc());
                        self.push(Inst::Jump(usize::MAX))?;
                        let next = self.pc();
                        self.program[split] = Inst::Split(split + 1, next);
                    }
                }
                let end = self.pc();
                for exit in exits {
                    self.program[exit] = Inst::Jump(end);
                }
                Ok(())
            }
            Node::Repeat { node, min, max } => {
                for _ in 0..*min {
                    self.node(node)?;
                }
                match max {
                    None => {
                        // A loop: try the body again, or leave.
                        let split = self.pc();
                        self.push(Inst::Split(split + 1, usize::MAX))?;
                        self.node(node)?;
                        self.push(Inst::Jump(split))?;
                        let end = self.pc();
                        self.program[split] = Inst::Split(split + 1, end);
                    }
                    Some(max) => {
                        // Each optional copy may be skipped, leaving the repetition.
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.pc());
                            self.push(Inst::Split(usize::MAX, usize::MAX))?;
                            self.node(node)?;
                        }
                        let end = self.pc();
                        for split in splits {
                            self.program[split] = Inst::Split(split + 1, end);
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Regex::new(pattern, false)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_match(text)
    }

    #[test]
    fn matching_follows_the_usual_syntax() {
        let cases: &[(&str, &str, bool)] = &[
            ("cat", "concatenate", true),
            ("^cat$", "cat", true),
            ("^cat$", "Cat", false),
            ("^cat$", "cats", false),
            ("", "anything", true),
            ("^$", "", true),
            ("^[^@]+@[^@]+$", "test@example.com", true),
            ("^[^@]+@[^@]+$", "not-an-email", false),
            ("^[^@]+@[^@]+$", "a@b@c", false),
            (r"^user\d{3}$", "user123", true),
            (r"^user\d{3}$", "user12", false),
            (r"^user\d{3}$", "user1234", false),
            ("^[[:alpha:]]+$", "AlphaBeta", true),
            ("^[[:alpha:]]+$", "Alpha1", false),
            ("^[[:^digit:]x]+$", "abcx", true),
            ("^[[:^digit:]]+$", "ab1", false),
            (r"\bcat\b", "a cat b", true),
            (r"\bcat\b", "concatenate", false),
            (r"\Bcat\B", "concatenate", true),
            ("^(foo|fo)$", "foo", true),
            ("^(foo|fo)$", "fo", true),
            ("^(foo|fo)$", "f", false),
            ("^(ab)?c$", "abc", true),
            ("^(ab)?c$", "c", true),
            ("^(ab)?c$", "ac", false),
            ("^a{2,4}$", "a", false),
            ("^a{2,4}$", "aa", true),
            ("^a{2,4}$", "aaaa", true),
            ("^a{2,4}$", "aaaaa", false),
            ("^a{2,}$", "aaaaaaa", true),
            ("^a{2}$", "aaa", false),
            ("^a.*?b$", "a___b___b", true),
            ("^a.*?b$", "a___b___c", false),
            ("^a+?$", "aaa", true),
            ("^(?i)abc$", "AbC", true),
            ("^(?i)abc$", "zAbCz", false),
            ("^a(?i:b)c$", "aBc", true),
            ("^a(?i:b)c$", "aBC", false),
            ("^(?i)a(?-i)b$", "Ab", true),
            ("^(?i)a(?-i)b$", "AB", false),
            ("(?m)^foo$", "x\nfoo\ny", true),
            ("(?m)^foo$", "x\nfo\ny", false),
            ("^foo$", "x\nfoo\ny", false),
            ("^(?s)a.b$", "a\nb", true),
            ("^a.b$", "a\nb", false),
            ("^(?:ab|cd)+$", "abcdab", true),
            ("^(?P<word>ab)(?<tail>c)$", "abc", true),
            (r"^\x41\x{1F600}\u{e9}$", "A😀é", true),
            (r"^[\w.-]+$", "a_b.c-d", true),
            (r"^[\w.-]+$", "a b", false),
            (r"^\s+$", " \t\n", true),
            (r"^\S+$", "a b", false),
            (r"^\.\*\+\?\(\)\[\]\{\}\|\\\^\$$", r".*+?()[]{}|\^$", true),
            ("^[]a]+$", "]a]", true),
            ("^[a-]+$", "a-a", true),
            ("^(a*)*$", "aaa", true),
            ("^(a*)*b$", "aaac", false),
            ("^(|a)+$", "aaa", true),
            (r"\Afoo\z", "foo", true),
            (r"\Afoo\z", "foo\n", false),
            ("ø+", "Hellø wørld", true),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(matches(pattern, text), expected, "{pattern:?} on {text:?}");
        }
    }

    #[test]
    fn case_insensitive_compiles_the_whole_pattern_that_way() {
        let regex = Regex::new("^ab[c-e]$", true).unwrap();
        assert!(regex.is_match("ABD"));
        assert!(regex.is_match("abe"));
        assert!(!regex.is_match("abf"));
        let negated = Regex::new("^[^a]$", true).unwrap();
        assert!(!negated.is_match("A"));
        assert!(negated.is_match("b"));
        assert!(Regex::new("^straße$", true).unwrap().is_match("STRAßE"));
    }

    #[test]
    fn unsupported_or_malformed_patterns_are_refused_with_a_reason() {
        let cases = [
            ("(regex", "never closed"),
            ("regex)", "closes no group"),
            ("[abc", "never closed"),
            ("^(?=a)b$", "look-ahead"),
            ("^(?!a)b$", "look-ahead"),
            ("(?<=a)b", "look-behind"),
            ("(?<!a)b", "look-behind"),
            (r"^(a)\1$", "back-references"),
            (r"\p{L}", "Unicode classes"),
            (r"\q", "unknown escape"),
            ("*a", "nothing to repeat"),
            ("a**", "cannot be repeated"),
            ("a{3,2}", "counts down"),
            ("a{2", "closed by `}`"),
            ("a{1001}", "at most 1000"),
            ("[[:vowel:]]", "unknown POSIX class"),
            ("[z-a]", "runs backwards"),
            ("[a&&b]", "set operations"),
            ("(?x)a", "verbose"),
            ("(?q)a", "unknown flag"),
            (r"\x4", "hex digits"),
            ("(a{1000}){1000}", "too large"),
        ];
        for (pattern, expected) in cases {
            let error = Regex::new(pattern, false).unwrap_err();
            assert!(error.to_string().contains(expected), "{pattern:?}: {error}");
        }
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(
            Regex::new(&deep, false)
                .unwrap_err()
                .to_string()
                .contains("nest")
        );
    }

    #[test]
    fn errors_point_at_the_character() {
        let error = Regex::new("ab(?=c)", false).unwrap_err();
        assert_eq!(error.position, 5);
    }

    #[test]
    fn a_pathological_pattern_runs_in_linear_time() {
        // A backtracking engine takes 2^n steps on this; a Pike VM takes n * m.
        let pattern = format!("^{}{}$", "a?".repeat(30), "a".repeat(30));
        let regex = Regex::new(&pattern, false).unwrap();
        let started = std::time::Instant::now();
        assert!(regex.is_match(&"a".repeat(30)));
        assert!(!regex.is_match(&format!("{}b", "a".repeat(29))));
        assert!(
            !Regex::new("^(a+)+$", false)
                .unwrap()
                .is_match(&format!("{}!", "a".repeat(5000)))
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
