//! Chinese text to numbered pinyin, the input of espeak-ng's `cmn-latn-pinyin` voice.
//!
//! [`to_numbered_pinyin`] writes one syllable per character, tone number last and the
//! neutral tone as 5 (`北关区` → `bei3 guan1 qu1`, `了` → `le5`), separated by single spaces.
//! The voice reads a syllable without a digit in the first tone, so the 5 is never left out.
//! Tones are written as in the dictionary: tone sandhi (third tone before third tone, 一 and
//! 不) is left to the voice.
//!
//! A character with several readings gets the pinyin crate's first one, which is wrong in a
//! few words common in alerts. Those words are read from [`HETERONYMS`] instead; at each
//! position the longest entry that matches wins, so `朝阳区` (the district, cháo) overrides
//! `朝阳` (the morning sun, zhāo).
//!
//! Everything else passes through for the voice to read as it can: Latin letters and digits
//! (which [`super::normalise::normalise_mandarin`] should have written out beforehand) as
//! words of their own, Chinese and ASCII punctuation as a pause:
//! `，、；：,;:()（）—` as `, ` and `。！？.!?…` and line breaks as `. `. Quotation marks
//! only separate words.

use ::pinyin::ToPinyin;

/// Words whose reading differs from the per-character default, or whose default is a
/// reading that could change with the data of the pinyin crate, with their numbered pinyin.
///
/// | Character | Words                                          |
/// |-----------|------------------------------------------------|
/// | 降 jiàng  | 降雨 降水 降温 降雪 (the default, pinned)       |
/// | 转 zhuǎn  | 转移 (pinned)                                  |
/// | 重        | 重要 严重 zhòng; 重新 重复 重建 重庆 chóng      |
/// | 行        | 行人 出行 xíng; 银行 行业 háng                  |
/// | 还        | 还有 hái; 归还 huán                             |
/// | 了 liǎo   | 了解                                           |
/// | 朝        | 朝阳 zhāo; 朝阳区 朝阳市 朝阳县 cháo            |
/// | 应 yìng   | 应急 响应 应对 供应                            |
/// | 长 cháng  | 长时间 长期 延长 长江 长沙 长春                 |
/// | 处 chǔ    | 处置 处理                                      |
/// | 为 wéi    | 成为 作为 认为                                 |
/// | 着 zháo   | 着火                                           |
/// | 调 tiáo   | 调整                                           |
/// | 都 dū     | 首都                                           |
/// | 塞 sè     | 堵塞                                           |
/// | 难 nàn    | 避难 灾难 遇难                                 |
/// | 累 lěi    | 累计                                           |
/// | 没 mò     | 淹没                                           |
/// | 中 zhòng  | 中暑                                           |
/// | 倒 dǎo    | 倒塌                                           |
/// | 厦 xià    | 厦门                                           |
pub const HETERONYMS: &[(&str, &str)] = &[
    ("降雨", "jiang4 yu3"),
    ("降水", "jiang4 shui3"),
    ("降温", "jiang4 wen1"),
    ("降雪", "jiang4 xue3"),
    ("转移", "zhuan3 yi2"),
    ("重要", "zhong4 yao4"),
    ("严重", "yan2 zhong4"),
    ("重新", "chong2 xin1"),
    ("重复", "chong2 fu4"),
    ("重建", "chong2 jian4"),
    ("重庆", "chong2 qing4"),
    ("行人", "xing2 ren2"),
    ("出行", "chu1 xing2"),
    ("银行", "yin2 hang2"),
    ("行业", "hang2 ye4"),
    ("还有", "hai2 you3"),
    ("归还", "gui1 huan2"),
    ("了解", "liao3 jie3"),
    ("朝阳", "zhao1 yang2"),
    ("朝阳区", "chao2 yang2 qu1"),
    ("朝阳市", "chao2 yang2 shi4"),
    ("朝阳县", "chao2 yang2 xian4"),
    ("应急", "ying4 ji2"),
    ("响应", "xiang3 ying4"),
    ("应对", "ying4 dui4"),
    ("供应", "gong1 ying4"),
    ("长时间", "chang2 shi2 jian1"),
    ("长期", "chang2 qi1"),
    ("延长", "yan2 chang2"),
    ("长江", "chang2 jiang1"),
    ("长沙", "chang2 sha1"),
    ("长春", "chang2 chun1"),
    ("处置", "chu3 zhi4"),
    ("处理", "chu3 li3"),
    ("成为", "cheng2 wei2"),
    ("作为", "zuo4 wei2"),
    ("认为", "ren4 wei2"),
    ("着火", "zhao2 huo3"),
    ("调整", "tiao2 zheng3"),
    ("首都", "shou3 du1"),
    ("堵塞", "du3 se4"),
    ("避难", "bi4 nan4"),
    ("灾难", "zai1 nan4"),
    ("遇难", "yu4 nan4"),
    ("累计", "lei3 ji4"),
    ("淹没", "yan1 mo4"),
    ("中暑", "zhong4 shu3"),
    ("倒塌", "dao3 ta1"),
    ("厦门", "xia4 men2"),
];

/// A pause between words, written as the punctuation the speech engine pauses at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// A comma: a short pause inside a sentence.
    Clause,
    /// A full stop: the longer pause at the end of a sentence.
    Sentence,
}

impl Pause {
    fn of(c: char) -> Option<Pause> {
        match c {
            '，' | '、' | '；' | '：' | ',' | ';' | ':' | '(' | ')' | '（' | '）' | '—' | '–'
            | '-' | '【' | '】' | '《' | '》' | '〈' | '〉' | '「' | '」' | '『' | '』' => {
                Some(Pause::Clause)
            }
            '。' | '！' | '？' | '.' | '!' | '?' | '…' | '\n' => Some(Pause::Sentence),
            _ => None,
        }
    }

    fn mark(self) -> char {
        match self {
            Pause::Clause => ',',
            Pause::Sentence => '.',
        }
    }
}

/// Converts Chinese text to space-separated numbered pinyin, as described in the
/// [module documentation](self).
pub fn to_numbered_pinyin(text: &str) -> String {
    let mut words = Words::default();
    let mut rest = text;

    while let Some(c) = rest.chars().next() {
        if let Some((phrase, reading)) = heteronym_at(rest) {
            words.end_word();
            words.syllables(reading.split(' '));
            rest = rest.get(phrase.len()..).unwrap_or_default();
            continue;
        }

        if let Some(pinyin) = c.to_pinyin() {
            words.end_word();
            let syllable = pinyin.with_tone_num_end();
            if syllable.ends_with(|c: char| c.is_ascii_digit()) {
                words.syllables([syllable]);
            } else {
                words.syllables([format!("{syllable}5").as_str()]);
            }
        } else if let Some(pause) = Pause::of(c) {
            words.pause(pause);
        } else if c.is_whitespace() || matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’') {
            words.end_word();
        } else {
            words.push_char(c);
        }
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }

    words.finish()
}

/// The longest entry of [`HETERONYMS`] that `text` starts with.
fn heteronym_at(text: &str) -> Option<(&'static str, &'static str)> {
    HETERONYMS
        .iter()
        .filter(|(phrase, _)| text.starts_with(phrase))
        .max_by_key(|(phrase, _)| phrase.len())
        .copied()
}

/// The output being built: finished words, and a word of characters without pinyin being
/// gathered.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    open: String,
}

impl Words {
    fn syllables<'a>(&mut self, syllables: impl IntoIterator<Item = &'a str>) {
        self.done.extend(syllables.into_iter().map(str::to_owned));
    }

    fn push_char(&mut self, c: char) {
        self.open.push(c);
    }

    fn end_word(&mut self) {
        if !self.open.is_empty() {
            self.done.push(std::mem::take(&mut self.open));
        }
    }

    /// Marks a pause after the last word. A sentence pause overrides a clause pause already
    /// there; a pause before any word is dropped, as there is nothing to pause after.
    fn pause(&mut self, pause: Pause) {
        self.end_word();
        let Some(last) = self.done.last_mut() else {
            return;
        };
        match last.chars().last().and_then(Pause::of) {
            Some(Pause::Sentence) => {}
            Some(Pause::Clause) if pause == Pause::Sentence => {
                last.pop();
                last.push(pause.mark());
            }
            Some(Pause::Clause) => {}
            None => last.push(pause.mark()),
        }
    }

    fn finish(mut self) -> String {
        self.end_word();
        self.done.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_get_their_readings_with_the_tone_number_last() {
        assert_eq!(
            to_numbered_pinyin("北关区暴雨红色预警"),
            "bei3 guan1 qu1 bao4 yu3 hong2 se4 yu4 jing3"
        );
    }

    #[test]
    fn the_neutral_tone_is_written_5() {
        assert_eq!(to_numbered_pinyin("我们的"), "wo3 men5 de5");
    }

    #[test]
    fn heteronyms_are_read_as_in_their_words() {
        for (text, reading) in [
            ("强降雨", "qiang2 jiang4 yu3"),
            ("紧急转移", "jin3 ji2 zhuan3 yi2"),
            ("重新开放", "chong2 xin1 kai1 fang4"),
            ("重要", "zhong4 yao4"),
            ("行人", "xing2 ren2"),
            ("银行", "yin2 hang2"),
            ("还有", "hai2 you3"),
            ("了解", "liao3 jie3"),
            ("启动应急响应", "qi3 dong4 ying4 ji2 xiang3 ying4"),
            ("长时间", "chang2 shi2 jian1"),
            ("防范中暑", "fang2 fan4 zhong4 shu3"),
            ("地下通道", "di4 xia4 tong1 dao4"),
        ] {
            assert_eq!(to_numbered_pinyin(text), reading, "{text}");
        }
    }

    #[test]
    fn the_longest_heteronym_wins() {
        assert_eq!(to_numbered_pinyin("朝阳"), "zhao1 yang2");
        assert_eq!(to_numbered_pinyin("朝阳区"), "chao2 yang2 qu1");
    }

    #[test]
    fn every_heteronym_has_one_syllable_per_character() {
        for (phrase, reading) in HETERONYMS {
            let syllables: Vec<&str> = reading.split(' ').collect();
            assert_eq!(syllables.len(), phrase.chars().count(), "{phrase}");
            assert!(
                syllables
                    .iter()
                    .all(|s| s.ends_with(|c: char| matches!(c, '1'..='5'))),
                "{phrase}"
            );
        }
    }

    #[test]
    fn punctuation_becomes_a_pause() {
        assert_eq!(
            to_numbered_pinyin("注意：暴雨，请转移！谢谢。"),
            "zhu4 yi4, bao4 yu3, qing3 zhuan3 yi2. xie4 xie4."
        );
        assert_eq!(
            to_numbered_pinyin("【预警】请注意"),
            "yu4 jing3, qing3 zhu4 yi4"
        );
        assert_eq!(to_numbered_pinyin("注意，。"), "zhu4 yi4.");
    }

    #[test]
    fn characters_without_pinyin_pass_through_as_words() {
        assert_eq!(
            to_numbered_pinyin("G一〇七国道 PM二点五"),
            "G yi1 ling2 qi1 guo2 dao4 PM er4 dian3 wu3"
        );
        assert_eq!(to_numbered_pinyin("ABC12"), "ABC12");
    }

    #[test]
    fn empty_text_gives_empty_pinyin() {
        assert_eq!(to_numbered_pinyin(""), "");
        assert_eq!(to_numbered_pinyin("。，"), "");
    }
}
