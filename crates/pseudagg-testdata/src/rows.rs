//! Making rows. Each chunk has its own generator, seeded from the seed and the chunk's index.

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::geography::{Ge, jobcenters};
use crate::names::{
    FIRST_FOREIGN, FIRST_M, FIRST_W, LAST_DE, LAST_FOREIGN, MAIL_HOSTS, MASSNAHMEN_VKB,
    NATIONALITY_OPDS, NATIONALITY_VKB, PROFILE, STREETS, ascii_fold,
};
use crate::{GenOptions, Kind};

/// Odd and prime to 2, 5 and 13, so `i -> i * MULT + offset (mod 26e6 or 1e7)` is a bijection:
/// Kundennummern and BG-Nummern are unique without a set to check against.
const MULT: u64 = 7_777_777;

pub(crate) struct Context {
    kind: Kind,
    seed: u64,
    month: String,
    last_day: NaiveDate,
    ges: Vec<Ge>,
    cumulative: Vec<f64>,
    nationality: &'static [(&'static str, u32)],
    nationality_total: u32,
    id_offset: u64,
    flagged_share: f64,
}

/// SplitMix64: spreads a seed and a chunk index over 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Context {
    pub(crate) fn new(opts: &GenOptions) -> Self {
        let ges = jobcenters();
        let mut acc = 0.0;
        let cumulative = ges
            .iter()
            .map(|g| {
                acc += g.weight;
                acc
            })
            .collect();
        let nationality = match opts.kind {
            Kind::VerbisVkb => NATIONALITY_VKB,
            Kind::OpdsPerson => NATIONALITY_OPDS,
        };
        Self {
            kind: opts.kind,
            seed: opts.seed,
            month: opts.month.to_string(),
            last_day: opts.month.last_day(),
            ges,
            cumulative,
            nationality,
            nationality_total: nationality.iter().map(|n| n.1).sum(),
            id_offset: mix(opts.seed ^ opts.kind as u64) % 26_000_000,
            flagged_share: opts.flagged_share,
        }
    }

    pub(crate) fn chunk(&self, from: u64, to: u64) -> Vec<u8> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(mix(self.seed ^ mix(from) ^ ((self.kind as u64) << 32)));
        let mut buf = Vec::with_capacity(((to - from) * 380) as usize);
        let mut household: Option<(usize, u64)> = None;
        for i in from..to {
            let mut line = Line {
                buf: &mut buf,
                first: true,
            };
            match self.kind {
                Kind::VerbisVkb => self.vkb_row(&mut rng, i, &mut line),
                Kind::OpdsPerson => self.opds_row(&mut rng, i, &mut household, &mut line),
            }
            buf.push(b'\n');
        }
        buf
    }

    fn pick_ge(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = *self.cumulative.last().expect("gEs exist");
        let x = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.ges.len() - 1)
    }

    fn pick_nationality(&self, rng: &mut ChaCha8Rng) -> &'static str {
        let mut x = rng.random_range(0..self.nationality_total);
        for (code, w) in self.nationality {
            if x < *w {
                return code;
            }
            x -= w;
        }
        "DEU"
    }

    fn kundennummer(&self, agentur: &str, i: u64) -> String {
        let n = (i.wrapping_mul(MULT) + self.id_offset) % 26_000_000;
        let letter = char::from(b'A' + (n / 1_000_000) as u8);
        format!("{agentur}{letter}{:06}", n % 1_000_000)
    }

    fn date_before(&self, rng: &mut ChaCha8Rng, max_days: i64) -> NaiveDate {
        self.last_day - Duration::days(rng.random_range(0..max_days))
    }

    fn person(&self, rng: &mut ChaCha8Rng, nationality: &str) -> Person {
        let sex = match rng.random_range(0..100) {
            0..50 => "m",
            50..98 => "w",
            _ => "d",
        };
        let german = nationality == "DEU" || rng.random_bool(0.1);
        let first = if german {
            let list = if sex == "w" || (sex == "d" && rng.random_bool(0.5)) {
                FIRST_W
            } else {
                FIRST_M
            };
            pick(rng, list).to_owned()
        } else {
            pick(rng, FIRST_FOREIGN).to_owned()
        };
        let mut last = pick(rng, if german { LAST_DE } else { LAST_FOREIGN }).to_owned();
        if rng.random_bool(0.05) {
            last = format!("{last}-{}", pick(rng, LAST_DE));
        }
        let age_days = rng.random_range(15 * 365..67 * 365);
        let birth = self.last_day - Duration::days(age_days);
        Person {
            sex,
            first,
            last,
            birth,
        }
    }

    fn address(rng: &mut ChaCha8Rng, ge: &Ge, line: &mut Line<'_>) {
        line.field(pick(rng, STREETS));
        let mut number = rng.random_range(1..180u32).to_string();
        if rng.random_bool(0.1) {
            number.push(char::from(b'a' + rng.random_range(0..3u8)));
        }
        line.field(&number);
        line.field(&format!("{:05}", rng.random_range(1067..99999u32)));
        line.field(pick(rng, ge.towns));
    }

    fn phone(rng: &mut ChaCha8Rng) -> String {
        if rng.random_bool(0.5) {
            format!(
                "+49 1{}{} {}",
                rng.random_range(5..8u8),
                rng.random_range(0..10u8),
                rng.random_range(1_000_000..99_999_999u32)
            )
        } else {
            format!(
                "0{} {}",
                rng.random_range(30..9999u32),
                rng.random_range(100_000..9_999_999u32)
            )
        }
    }

    fn staff(rng: &mut ChaCha8Rng, agentur: &str, salt: usize) -> (String, String, usize) {
        let k = rng.random_range(0..32usize);
        let a: usize = agentur.parse().unwrap_or(0);
        let first = FIRST_W.len().max(FIRST_M.len());
        let name = format!(
            "{} {}",
            if (a + k + salt).is_multiple_of(2) {
                FIRST_W[(a * 7 + k) % first % FIRST_W.len()]
            } else {
                FIRST_M[(a * 3 + k) % FIRST_M.len()]
            },
            LAST_DE[(a * 11 + k * 5 + salt) % LAST_DE.len()]
        );
        (format!("FK{agentur}{k:03}"), name, k)
    }

    #[allow(clippy::too_many_lines)] // one field after the other, in the schema's order
    fn vkb_row(&self, rng: &mut ChaCha8Rng, i: u64, line: &mut Line<'_>) {
        let ge = &self.ges[self.pick_ge(rng)];
        let nationality = self.pick_nationality(rng);
        let p = self.person(rng, nationality);
        let sgb2 = rng.random_bool(0.6);
        let phone = rng.random_bool(0.7).then(|| Self::phone(rng));
        let email = rng.random_bool(0.5).then(|| {
            format!(
                "{}.{}@{}",
                ascii_fold(&p.first),
                ascii_fold(&p.last),
                pick(rng, MAIL_HOSTS)
            )
        });

        line.field(&self.kundennummer(&ge.agentur_nr, i));
        line.field(&p.first);
        line.field(&p.last);
        line.date(p.birth);
        line.field(p.sex);
        Self::address(rng, ge, line);
        line.opt(phone.as_deref());
        line.opt(email.as_deref());
        line.field(nationality);
        line.field(ge.rd);
        line.field(&ge.agentur_nr);
        line.opt(sgb2.then_some(ge.ge_nr.as_str()));
        line.field(if sgb2 { "SGB II" } else { "SGB III" });
        line.field(match rng.random_range(0..10) {
            0..6 => "AV",
            6..8 => "INGA",
            8 => "BBiE",
            _ => "Reha",
        });
        let (fk_id, fk_name, k) = Self::staff(rng, &ge.agentur_nr, 0);
        line.field(&format!("{}-{}", ge.agentur_nr, k / 8 + 1));
        line.field(&fk_id);
        line.field(&fk_name);
        let tl = format!("TL{}{:02}", ge.agentur_nr, k / 8 + 1);
        let a: usize = ge.agentur_nr.parse().unwrap_or(0);
        line.field(&tl);
        line.field(&format!(
            "{} {}",
            FIRST_W[(a + k / 8) % FIRST_W.len()],
            LAST_DE[(a * 13 + k / 8) % LAST_DE.len()]
        ));
        let flagged = rng.random_bool(self.flagged_share);
        line.field(if flagged { "J" } else { "N" });
        line.opt_date(flagged.then(|| self.date_before(rng, 28)));
        let zugang = self.date_before(rng, 5 * 365);
        if rng.random_bool(0.02) {
            line.field(&zugang.format("%Y-%m-%d").to_string());
        } else {
            line.date(zugang);
        }
        let span = (self.last_day - zugang).num_days().max(1);
        line.opt_date(
            rng.random_bool(0.85)
                .then(|| self.last_day - Duration::days(rng.random_range(0..span.min(400)))),
        );
        line.field(pick(rng, PROFILE));
        line.field(if rng.random_bool(0.7) { "J" } else { "N" });
        line.opt(rng.random_bool(0.3).then(|| pick(rng, MASSNAHMEN_VKB)));
        let note = rng
            .random_bool(0.4)
            .then(|| vermerk(rng, &p, phone.as_deref(), email.as_deref()));
        line.opt(note.as_deref());
        line.field(&self.month);
    }

    fn opds_row(
        &self,
        rng: &mut ChaCha8Rng,
        i: u64,
        household: &mut Option<(usize, u64)>,
        line: &mut Line<'_>,
    ) {
        // About half the people live in a household with the person before them.
        let (gi, bg) = match *household {
            Some(h) if rng.random_bool(0.45) => h,
            _ => {
                let h = (
                    self.pick_ge(rng),
                    (i.wrapping_mul(MULT) + self.id_offset) % 10_000_000,
                );
                *household = Some(h);
                h
            }
        };
        let ge = &self.ges[gi];
        let nationality = self.pick_nationality(rng);
        let p = self.person(rng, nationality);
        let refugee = matches!(
            nationality,
            "UKR" | "AFG" | "ERI" | "IRQ" | "IRN" | "NGA" | "PAK" | "SOM" | "SYR"
        );

        line.field(&self.kundennummer(&ge.agentur_nr, i));
        line.field(&format!("{}BG{bg:07}", ge.ge_nr));
        line.field(&p.first);
        line.field(&p.last);
        line.date(p.birth);
        Self::address(rng, ge, line);
        line.field(p.sex);
        line.field(nationality);
        line.field(ge.rd);
        line.field(&ge.ge_nr);
        line.field(&ge.name);
        let age = self.last_day.year() - p.birth.year();
        line.field(if age >= 15 && rng.random_bool(0.8) {
            "J"
        } else {
            "N"
        });
        let course = if nationality == "DEU" {
            "keiner"
        } else {
            match rng.random_range(0..100) {
                0..25 => "keiner",
                25..45 => "laufend",
                45..90 => "abgeschlossen",
                _ => "abgebrochen",
            }
        };
        line.field(course);
        line.opt_date(
            matches!(course, "abgeschlossen" | "abgebrochen")
                .then(|| self.date_before(rng, 3 * 365)),
        );
        line.field(if nationality == "DEU" {
            "C2"
        } else {
            pick(rng, &["A1", "A2", "B1", "B1", "B2", "C1", "unbekannt"])
        });
        line.field(match rng.random_range(0..100) {
            0..68 => "keine",
            68..82 => "sv_pflichtig",
            82..93 => "geringfuegig",
            93..95 => "selbststaendig",
            _ => "ausbildung",
        });
        line.opt(match rng.random_range(0..100) {
            0..12 if refugee => Some("Berufssprachkurs"),
            12..20 => Some("FbW"),
            20..26 => Some("AGH"),
            _ => None,
        });
        line.opt_date(rng.random_bool(0.85).then(|| self.date_before(rng, 180)));
        line.field(if rng.random_bool(0.65) { "J" } else { "N" });
        let (fk_id, fk_name, _) = Self::staff(rng, &ge.agentur_nr, 1);
        line.field(&fk_id);
        line.field(&fk_name);
        line.field(&self.month);
    }
}

struct Person {
    sex: &'static str,
    first: String,
    last: String,
    birth: NaiveDate,
}

fn pick<'a>(rng: &mut ChaCha8Rng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

/// A note as staff type them: sometimes with the customer's name, phone or e-mail, with `;`, `"`
/// and now and then a line break.
fn vermerk(rng: &mut ChaCha8Rng, p: &Person, phone: Option<&str>, email: Option<&str>) -> String {
    let title = if p.sex == "w" { "Frau" } else { "Herr" };
    match rng.random_range(0..9) {
        0 => format!(
            "Kunde {} {} telefonisch unter {} erreicht; Termin vereinbart",
            p.first,
            p.last,
            phone.unwrap_or("0911 179-0")
        ),
        1 => "Rückruf erbeten; Kundin sagt: \"bitte nur vormittags\"".to_owned(),
        2 => format!(
            "{title} {} zum Gespräch nicht erschienen; Einladung erneut versandt",
            p.last
        ),
        3 => "Unterlagen unvollständig; Nachforderung gestellt".to_owned(),
        4 => "Bewerbung bei Fa. \"Schulz & Söhne\"; Rückmeldung offen".to_owned(),
        5 => format!(
            "E-Mail an {} gesendet; keine Antwort",
            email.unwrap_or("kunde@example.de")
        ),
        6 => format!("Gespräch mit {} {}:\nSprachkurs empfohlen", p.first, p.last),
        7 => "Eingliederungsvereinbarung besprochen; \"Kooperationsplan\" erstellt".to_owned(),
        _ => format!(
            "Kontakt {}; {title} {} wünscht Beratung zu FbW",
            phone.unwrap_or("per Post"),
            p.last
        ),
    }
}

/// One CSV line being written: `;`-separated, quoted where needed.
struct Line<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl Line<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b';');
        }
        self.first = false;
    }

    fn field(&mut self, value: &str) {
        self.sep();
        if value
            .bytes()
            .any(|b| matches!(b, b';' | b'"' | b'\n' | b'\r'))
        {
            self.buf.push(b'"');
            for b in value.bytes() {
                if b == b'"' {
                    self.buf.push(b'"');
                }
                self.buf.push(b);
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
    }

    fn opt(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.field(v),
            None => self.sep(),
        }
    }

    fn date(&mut self, d: NaiveDate) {
        self.sep();
        let (day, month, year) = (d.day(), d.month(), d.year());
        let digits = [
            b'0' + (day / 10) as u8,
            b'0' + (day % 10) as u8,
            b'.',
            b'0' + (month / 10) as u8,
            b'0' + (month % 10) as u8,
            b'.',
        ];
        self.buf.extend_from_slice(&digits);
        let mut y = itoa::Buffer::new();
        self.buf.extend_from_slice(y.format(year).as_bytes());
    }

    fn opt_date(&mut self, d: Option<NaiveDate>) {
        match d {
            Some(d) => self.date(d),
            None => self.sep(),
        }
    }
}
