//! Mandarin text normalisation: writing out in characters what a pinyin lookup cannot read.
//!
//! A pinyin table has readings for Chinese characters only. Alert texts are full of digits,
//! times and unit symbols (`2026年7月21日06:30`, `100mm`, `-5℃`, `80%`), which it would
//! skip or pass through for the speech engine to read in English. [`normalise_mandarin`]
//! rewrites them as a Mandarin speaker reads them aloud, and leaves everything else alone:
//!
//! | Written                | Read as                       | Rule                                         |
//! |------------------------|-------------------------------|----------------------------------------------|
//! | `123`, `10`, `1005`    | 一百二十三, 十, 一千零五      | cardinal, 零 for each run of inner zeros     |
//! | `12,000`               | 一万二千                      | commas between groups of three digits        |
//! | `3.05`                 | 三点零五                      | fraction read digit by digit                 |
//! | `30%`, `5‰`            | 百分之三十, 千分之五          |                                              |
//! | `2026年`               | 二〇二六年                    | four digits before 年 are a year, digit by digit (not before 一遇: `1000年一遇` is a return period) |
//! | `2026-07-21`           | 二〇二六年七月二十一日        | also with `/` or `.`                         |
//! | `06:30`, `08:00`       | 六点三十分, 八点整            | hours up to 24; seconds if given             |
//! | `06时`, `08日`         | 六时, 八日                    | a leading zero before a time or date unit is dropped |
//! | `0371`, `G107`, `PM2.5`| 〇三七一, G一〇七, PM二点五   | a leading zero, or a letter just before, makes a code read digit by digit |
//! | `20~30`, `3-5级`       | 二十到三十, 三到五级          | `~`, `-`, `–`, `—` between numbers           |
//! | `-5℃`, `-3`            | 零下五摄氏度, 负三            | a minus before a temperature is 零下         |
//! | `100mm`, `60 km/h`     | 一百毫米, 六十公里每小时      | units after a number, see `UNITS`            |
//!
//! Full-width digits, letters and symbols (`３０％`) are read as their ASCII forms; Chinese
//! punctuation stays as it is, and ASCII punctuation that is not part of a number stays too:
//! both become pauses in [`super::pinyin::to_numbered_pinyin`]. Runs of spaces shrink to one,
//! and runs of white space holding a line break to one line break.
//!
//! Not handled, and read as plain cardinals: telephone numbers without a leading zero
//! (`12345` is 一万二千三百四十五, where a speaker says 一二三四五), 两 for 2 before a
//! measure word (二点 rather than 两点), fractions written with `/`, and numbers of more
//! than sixteen digits, which are read digit by digit.

/// Digits read one by one, in years and codes.
const DIGIT_NAMES: [char; 10] = ['〇', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Digits in cardinals and decimal fractions.
const DIGIT_WORDS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Longest digit run read as a cardinal: up to 万亿 (10¹²) groups of four.
const MAX_CARDINAL_DIGITS: usize = 16;

/// Unit symbols read after a number, longest first so that `km/h` is not read as `km`.
const UNITS: [(&str, &str); 17] = [
    ("m³/s", "立方米每秒"),
    ("m3/s", "立方米每秒"),
    ("km/h", "公里每小时"),
    ("mm/h", "毫米每小时"),
    ("km²", "平方公里"),
    ("m/s", "米每秒"),
    ("hPa", "百帕"),
    ("°C", "摄氏度"),
    ("m³", "立方米"),
    ("m²", "平方米"),
    ("mm", "毫米"),
    ("cm", "厘米"),
    ("km", "公里"),
    ("℃", "摄氏度"),
    ("°", "度"),
    ("m", "米"),
    ("h", "小时"),
];

/// Characters after which a number with a leading zero is an hour, minute, month or day.
const TIME_AND_DATE_UNITS: [char; 7] = ['时', '点', '分', '秒', '月', '日', '号'];

/// Rewrites the numbers, dates, times and unit symbols of a Mandarin text in Chinese
/// characters, as described in the [module documentation](self).
pub fn normalise_mandarin(text: &str) -> String {
    let chars: Vec<char> = text.chars().map(narrow).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut at = 0;
    // Whether the last thing written was a number, so that a dash after it is a range.
    let mut after_number = false;

    while let Some(&c) = chars.get(at) {
        let next = chars.get(at + 1).copied();
        let next_is_digit = next.is_some_and(|n| n.is_ascii_digit());

        if c.is_ascii_digit() {
            let (spoken, end) = iso_date(&chars, at)
                .or_else(|| clock_time(&chars, at))
                .unwrap_or_else(|| number(&chars, at));
            out.push_str(&spoken);
            at = end;
            after_number = true;
            continue;
        }

        if after_number
            && is_range_dash(c)
            && (next_is_digit || starts_signed_number(&chars, at + 1))
        {
            out.push('到');
        } else if c == '-' && next_is_digit && !previous_is_alphanumeric(&chars, at) {
            out.push_str(if temperature_follows(&chars, at + 1) {
                "零下"
            } else {
                "负"
            });
        } else if c == '℃' {
            out.push_str("摄氏度");
        } else if c.is_whitespace() {
            let end = chars[at..]
                .iter()
                .position(|c| !c.is_whitespace())
                .map_or(chars.len(), |n| at + n);
            let breaks_line = chars[at..end].contains(&'\n');
            out.push(if breaks_line { '\n' } else { ' ' });
            at = end;
            after_number = false;
            continue;
        } else {
            out.push(c);
        }
        at += 1;
        after_number = false;
    }

    out.trim().to_owned()
}

/// Maps full-width forms (U+FF01..U+FF5E) to ASCII, the ideographic space to a space and the
/// minus sign to a hyphen. Chinese punctuation (，：；！？（）) stays, so that a full-width
/// comma is never taken for a thousands separator.
fn narrow(c: char) -> char {
    match c {
        '，' | '：' | '；' | '！' | '？' | '（' | '）' => c,
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        '\u{2212}' => '-',
        _ => c,
    }
}

fn is_range_dash(c: char) -> bool {
    matches!(c, '~' | '-' | '–' | '—' | '〜')
}

fn previous_is_alphanumeric(chars: &[char], at: usize) -> bool {
    at.checked_sub(1)
        .and_then(|before| chars.get(before))
        .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn starts_signed_number(chars: &[char], at: usize) -> bool {
    chars.get(at) == Some(&'-') && chars.get(at + 1).is_some_and(char::is_ascii_digit)
}

/// End of the run of ASCII digits starting at `at`.
fn digits_end(chars: &[char], at: usize) -> usize {
    chars
        .get(at..)
        .and_then(|rest| rest.iter().position(|c| !c.is_ascii_digit()))
        .map_or(chars.len().max(at), |n| at + n)
}

/// The value of a run of ASCII digits; `None` past `u64`.
fn value(digits: &[char]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, c| {
        value
            .checked_mul(10)?
            .checked_add(u64::from(c.to_digit(10)?))
    })
}

fn starts_with(chars: &[char], at: usize, word: &str) -> bool {
    (at..)
        .zip(word.chars())
        .all(|(i, c)| chars.get(i) == Some(&c))
}

/// `2026-07-21`, `2026/7/21` or `2026.7.21`, read as 二〇二六年七月二十一日.
fn iso_date(chars: &[char], at: usize) -> Option<(String, usize)> {
    let year_end = digits_end(chars, at);
    let separator = *chars
        .get(year_end)
        .filter(|c| matches!(c, '-' | '/' | '.'))?;
    let month_end = digits_end(chars, year_end + 1);
    let day_end = digits_end(chars, month_end + 1);

    let month = value(chars.get(year_end + 1..month_end)?)?;
    let day = value(chars.get(month_end + 1..day_end)?)?;
    let well_formed = year_end - at == 4
        && (1..=2).contains(&(month_end - year_end - 1))
        && chars.get(month_end) == Some(&separator)
        && (1..=2).contains(&(day_end - month_end - 1))
        && (1..=12).contains(&month)
        && (1..=31).contains(&day);
    if !well_formed {
        return None;
    }

    let year = spell(chars.get(at..year_end)?);
    let spoken = format!("{year}年{}月{}日", cardinal(month), cardinal(day));
    Some((spoken, day_end))
}

/// `06:30`, `8:00` or `23:59:30`, read as 六点三十分, 八点整, 二十三点五十九分三十秒.
fn clock_time(chars: &[char], at: usize) -> Option<(String, usize)> {
    let is_colon = |i: usize| matches!(chars.get(i), Some(':' | '：'));
    let two_digits = |i: usize| {
        (digits_end(chars, i) == i + 2)
            .then(|| value(chars.get(i..i + 2)?))
            .flatten()
    };

    let hour_end = digits_end(chars, at);
    if !(1..=2).contains(&(hour_end - at)) || !is_colon(hour_end) {
        return None;
    }
    let hour = value(chars.get(at..hour_end)?).filter(|&h| h <= 24)?;
    let minute = two_digits(hour_end + 1).filter(|&m| m <= 59)?;
    let mut end = hour_end + 3;
    let second = if is_colon(end) {
        two_digits(end + 1).filter(|&s| s <= 59)
    } else {
        None
    };
    if second.is_some() {
        end += 3;
    }

    let mut spoken = format!("{}点", cardinal(hour));
    match (minute, second) {
        (0, None | Some(0)) => spoken.push('整'),
        (minute, _) => spoken.push_str(&format!("{}分", minute_reading(minute))),
    }
    if let Some(second) = second.filter(|&s| s > 0) {
        spoken.push_str(&format!("{}秒", minute_reading(second)));
    }
    Some((spoken, end))
}

/// Minutes and seconds below ten keep their zero: 六点零五分.
fn minute_reading(value: u64) -> String {
    match value {
        1..=9 => format!("零{}", cardinal(value)),
        _ => cardinal(value),
    }
}

/// A number starting at `at` with whatever belongs to it: a percent sign before, a unit
/// after. Always consumes at least the first digit.
fn number(chars: &[char], at: usize) -> (String, usize) {
    let (integer, mut end) = integer_digits(chars, at);
    let fraction_end = digits_end(chars, end + 1);
    let fraction = (chars.get(end) == Some(&'.') && fraction_end > end + 1)
        .then(|| chars.get(end + 1..fraction_end))
        .flatten();
    if fraction.is_some() {
        end = fraction_end;
    }
    let next = chars.get(end).copied();

    let is_code = previous_is_alphanumeric(chars, at) && !previous_is_digit(chars, at);
    let is_year = integer.len() == 4
        && fraction.is_none()
        && next == Some('年')
        && !starts_with(chars, end + 1, "一遇");
    let has_leading_zero = integer.len() > 1
        && integer.first() == Some(&'0')
        && fraction.is_none()
        && !next.is_some_and(|n| TIME_AND_DATE_UNITS.contains(&n));
    let too_long = integer.len() > MAX_CARDINAL_DIGITS;

    let mut spoken = match value(&integer) {
        Some(value) if !(is_code || is_year || has_leading_zero || too_long) => cardinal(value),
        _ => spell(&integer),
    };
    if let Some(fraction) = fraction {
        spoken.push('点');
        spoken.extend(fraction.iter().filter_map(|&d| digit_word(DIGIT_WORDS, d)));
    }
    if is_code {
        return (spoken, end);
    }

    match next {
        Some('%') => return (format!("百分之{spoken}"), end + 1),
        Some('‰') => return (format!("千分之{spoken}"), end + 1),
        _ => {}
    }
    if percent_ends_range(chars, end) {
        return (format!("百分之{spoken}"), end);
    }
    match unit(chars, end) {
        Some((words, unit_end)) => (spoken + words, unit_end),
        None => (spoken, end),
    }
}

fn previous_is_digit(chars: &[char], at: usize) -> bool {
    at.checked_sub(1)
        .and_then(|before| chars.get(before))
        .is_some_and(char::is_ascii_digit)
}

/// The digits of an integer starting at `at`, without the commas of a thousands grouping
/// (`12,000`), and where it ends.
fn integer_digits(chars: &[char], at: usize) -> (Vec<char>, usize) {
    let mut end = digits_end(chars, at);
    let mut digits: Vec<char> = chars.get(at..end).unwrap_or_default().to_vec();
    let grouped = (1..=3).contains(&digits.len());

    while grouped && chars.get(end) == Some(&',') && digits_end(chars, end + 1) == end + 4 {
        digits.extend(chars.get(end + 1..end + 4).unwrap_or_default());
        end += 4;
    }
    (digits, end)
}

/// Whether a range ending in a percentage follows (`20~30%`), so that the first number is
/// read as a percentage too: 百分之二十到百分之三十.
fn percent_ends_range(chars: &[char], at: usize) -> bool {
    let Some(&dash) = chars.get(at) else {
        return false;
    };
    let (_, end) = integer_digits(chars, at + 1);
    let end = skip_fraction(chars, end);
    is_range_dash(dash) && end > at + 1 && chars.get(end) == Some(&'%')
}

fn skip_fraction(chars: &[char], at: usize) -> usize {
    let end = digits_end(chars, at + 1);
    if chars.get(at) == Some(&'.') && end > at + 1 {
        end
    } else {
        at
    }
}

/// Whether the number starting at `at`, or the range it opens, is a temperature.
fn temperature_follows(chars: &[char], at: usize) -> bool {
    let mut end = skip_fraction(chars, integer_digits(chars, at).1);
    if chars.get(end).is_some_and(|&c| is_range_dash(c)) {
        let second = if starts_signed_number(chars, end + 1) {
            end + 2
        } else {
            end + 1
        };
        if chars.get(second).is_some_and(char::is_ascii_digit) {
            end = skip_fraction(chars, integer_digits(chars, second).1);
        }
    }
    matches!(unit(chars, end), Some(("摄氏度" | "度", _)))
}

/// The unit symbol at `at`, after at most one space, and where it ends. A symbol followed by
/// a Latin letter is part of a word, not a unit.
fn unit(chars: &[char], at: usize) -> Option<(&'static str, usize)> {
    let start = if chars.get(at) == Some(&' ') {
        at + 1
    } else {
        at
    };
    UNITS.iter().find_map(|&(symbol, words)| {
        let end = start + symbol.chars().count();
        let part_of_word = chars.get(end).is_some_and(char::is_ascii_alphabetic);
        (starts_with(chars, start, symbol) && !part_of_word).then_some((words, end))
    })
}

fn digit_word(table: [char; 10], digit: char) -> Option<char> {
    let index = usize::try_from(digit.to_digit(10)?).ok()?;
    table.get(index).copied()
}

/// Digits read one by one: 2026 → 二〇二六.
fn spell(digits: &[char]) -> String {
    digits
        .iter()
        .filter_map(|&d| digit_word(DIGIT_NAMES, d))
        .collect()
}

/// A cardinal number below 10¹⁶ in characters: 10 → 十, 1005 → 一千零五, 100010 → 十万零一十.
///
/// The number is read in groups of four digits (个, 万, 亿, 万亿). A single 零 stands for any
/// run of zeros between two non-zero digits, inside a group or across groups; trailing zeros
/// are not read, and 一十 at the very start is read 十.
fn cardinal(value: u64) -> String {
    const GROUP_UNITS: [&str; 4] = ["", "万", "亿", "万亿"];

    if value == 0 {
        return "零".to_owned();
    }

    let mut groups = Vec::with_capacity(GROUP_UNITS.len());
    let mut rest = value;
    while rest > 0 {
        groups.push(rest % 10_000);
        rest /= 10_000;
    }

    let mut out = String::new();
    let mut zeros_skipped = false;
    for (index, &group) in groups.iter().enumerate().rev() {
        if group == 0 {
            zeros_skipped = !out.is_empty();
            continue;
        }
        if !out.is_empty() && (zeros_skipped || group < 1_000) {
            out.push('零');
        }
        out.push_str(&below_ten_thousand(group));
        out.push_str(GROUP_UNITS.get(index).copied().unwrap_or_default());
        zeros_skipped = false;
    }

    match out.strip_prefix("一十") {
        Some(rest) => format!("十{rest}"),
        None => out,
    }
}

/// One group of four digits, without its leading zeros: 1050 → 一千零五十, 10 → 一十.
fn below_ten_thousand(group: u64) -> String {
    const PLACES: [(u64, Option<char>); 4] = [
        (1_000, Some('千')),
        (100, Some('百')),
        (10, Some('十')),
        (1, None),
    ];

    let mut out = String::new();
    let mut zero_pending = false;
    for (place, name) in PLACES {
        let digit = group / place % 10;
        if digit == 0 {
            zero_pending = !out.is_empty();
            continue;
        }
        if zero_pending {
            out.push('零');
            zero_pending = false;
        }
        out.extend(usize::try_from(digit).ok().and_then(|d| DIGIT_WORDS.get(d)));
        out.extend(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(written: &str, spoken: &str) {
        assert_eq!(normalise_mandarin(written), spoken, "{written}");
    }

    #[test]
    fn integers_are_read_with_zero_rules() {
        reads("0", "零");
        reads("7", "七");
        reads("10", "十");
        reads("15", "十五");
        reads("110", "一百一十");
        reads("123", "一百二十三");
        reads("105", "一百零五");
        reads("1005", "一千零五");
        reads("1050", "一千零五十");
        reads("1500", "一千五百");
        reads("10001", "一万零一");
        reads("12345", "一万二千三百四十五");
        reads("100000", "十万");
        reads("100010", "十万零一十");
        reads("110000", "十一万");
        reads("100000001", "一亿零一");
        reads("100001000", "一亿零一千");
        reads("3000000000", "三十亿");
    }

    #[test]
    fn thousands_separators_are_not_read() {
        reads("受灾人口12,000人", "受灾人口一万二千人");
        reads("1,234,567", "一百二十三万四千五百六十七");
        reads("3,5", "三,五");
    }

    #[test]
    fn decimals_are_read_digit_by_digit_after_the_point() {
        reads("3.5", "三点五");
        reads("3.05", "三点零五");
        reads("0.25", "零点二五");
        reads("气温18.5度。", "气温十八点五度。");
    }

    #[test]
    fn percentages_start_with_bai_fen_zhi() {
        reads("30%", "百分之三十");
        reads("降水概率80％", "降水概率百分之八十");
        reads("12.5%", "百分之十二点五");
        reads("5‰", "千分之五");
        reads("20~30%", "百分之二十到百分之三十");
    }

    #[test]
    fn a_year_is_read_digit_by_digit_and_month_and_day_as_numbers() {
        reads("2026年7月21日", "二〇二六年七月二十一日");
        reads("2000年", "二〇〇〇年");
        reads("1000年一遇", "一千年一遇");
        reads("2026-07-21", "二〇二六年七月二十一日");
        reads("2026/7/1", "二〇二六年七月一日");
    }

    #[test]
    fn clock_times_are_read_with_dian_and_fen() {
        reads("06:30", "六点三十分");
        reads("08:00", "八点整");
        reads("9:05", "九点零五分");
        reads("23:59:30", "二十三点五十九分三十秒");
        reads("06：30发布", "六点三十分发布");
        reads("08:00-20:00", "八点整到二十点整");
        reads("21日06时", "二十一日六时");
    }

    #[test]
    fn units_after_a_number_are_read_in_full() {
        reads("100mm", "一百毫米");
        reads("60 km/h", "六十公里每小时");
        reads("25m/s", "二十五米每秒");
        reads("18℃", "十八摄氏度");
        reads("18°C", "十八摄氏度");
        reads("5km", "五公里");
        reads("水位上涨2m", "水位上涨二米");
        reads("流量5000m³/s", "流量五千立方米每秒");
        reads("累计降雨量50~100毫米", "累计降雨量五十到一百毫米");
        reads("3-5级", "三到五级");
    }

    #[test]
    fn a_unit_letter_that_starts_a_word_is_left_alone() {
        reads("5 more", "五 more");
        reads("3 min", "三 min");
    }

    #[test]
    fn a_minus_before_a_temperature_is_below_zero() {
        reads("最低气温-5℃", "最低气温零下五摄氏度");
        reads("-10~-3℃", "零下十到零下三摄氏度");
        reads("-5~3°C", "零下五到三摄氏度");
        reads("-3", "负三");
    }

    #[test]
    fn codes_and_numbers_with_a_leading_zero_are_read_digit_by_digit() {
        reads("G107国道", "G一〇七国道");
        reads("PM2.5", "PM二点五");
        reads("电话0371", "电话〇三七一");
    }

    #[test]
    fn full_width_digits_are_read_like_ascii() {
        reads("３０％", "百分之三十");
    }

    #[test]
    fn punctuation_and_chinese_text_are_kept() {
        reads(
            "北关区暴雨红色预警：请注意防范！",
            "北关区暴雨红色预警：请注意防范！",
        );
        reads("注意, 避险. 谢谢", "注意, 避险. 谢谢");
    }

    #[test]
    fn white_space_shrinks_and_line_breaks_survive() {
        reads("  暴雨   预警 \n\n 请转移  ", "暴雨 预警\n请转移");
    }

    #[test]
    fn a_whole_alert_is_normalised() {
        reads(
            "北关区气象台2026年7月21日06:30发布暴雨红色预警：预计未来3小时降雨量将达100mm以上，\
             最大风速25m/s，降水概率80%。",
            "北关区气象台二〇二六年七月二十一日六点三十分发布暴雨红色预警：预计未来三小时\
             降雨量将达一百毫米以上，最大风速二十五米每秒，降水概率百分之八十。",
        );
    }
}
