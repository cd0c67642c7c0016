//! A fixed synthetic geography: the 10 RDs, their agencies and their Jobcenters (gE), with skewed
//! sizes so that small gEs (and so counts of 1 and 2) occur. It does not depend on the seed.

/// One Jobcenter.
#[derive(Debug, Clone)]
pub struct Ge {
    pub rd: &'static str,
    pub agentur_nr: String,
    pub ge_nr: String,
    pub name: String,
    /// Relative size.
    pub weight: f64,
    /// Towns of its RD, for addresses.
    pub towns: &'static [&'static str],
}

/// (RD, number of agencies, number of gEs, relative size, towns)
const RDS: &[(&str, usize, usize, f64, &[&str])] = &[
    (
        "NORD",
        13,
        30,
        1.0,
        &[
            "Hamburg",
            "Kiel",
            "Lübeck",
            "Rostock",
            "Schwerin",
            "Flensburg",
            "Neumünster",
            "Stralsund",
            "Greifswald",
            "Wismar",
            "Itzehoe",
            "Husum",
        ],
    ),
    (
        "NSB",
        20,
        45,
        1.3,
        &[
            "Hannover",
            "Bremen",
            "Braunschweig",
            "Oldenburg",
            "Osnabrück",
            "Göttingen",
            "Wolfsburg",
            "Hildesheim",
            "Lüneburg",
            "Celle",
            "Emden",
            "Bremerhaven",
        ],
    ),
    (
        "NRW",
        30,
        70,
        2.8,
        &[
            "Köln",
            "Düsseldorf",
            "Dortmund",
            "Essen",
            "Duisburg",
            "Bochum",
            "Wuppertal",
            "Bielefeld",
            "Münster",
            "Gelsenkirchen",
            "Mönchengladbach",
            "Aachen",
            "Krefeld",
            "Oberhausen",
            "Hagen",
            "Hamm",
            "Siegen",
            "Paderborn",
        ],
    ),
    (
        "HES",
        12,
        35,
        1.0,
        &[
            "Frankfurt am Main",
            "Wiesbaden",
            "Kassel",
            "Darmstadt",
            "Offenbach am Main",
            "Gießen",
            "Marburg",
            "Fulda",
            "Hanau",
            "Wetzlar",
        ],
    ),
    (
        "RPS",
        14,
        35,
        0.8,
        &[
            "Mainz",
            "Ludwigshafen",
            "Koblenz",
            "Trier",
            "Kaiserslautern",
            "Saarbrücken",
            "Neunkirchen",
            "Worms",
            "Pirmasens",
            "Homburg",
        ],
    ),
    (
        "BW",
        19,
        50,
        1.3,
        &[
            "Stuttgart",
            "Mannheim",
            "Karlsruhe",
            "Freiburg im Breisgau",
            "Heidelberg",
            "Ulm",
            "Heilbronn",
            "Pforzheim",
            "Reutlingen",
            "Esslingen",
            "Konstanz",
            "Tübingen",
        ],
    ),
    (
        "BY",
        24,
        75,
        1.5,
        &[
            "München",
            "Nürnberg",
            "Augsburg",
            "Regensburg",
            "Würzburg",
            "Ingolstadt",
            "Fürth",
            "Erlangen",
            "Bamberg",
            "Bayreuth",
            "Landshut",
            "Passau",
            "Kempten",
            "Rosenheim",
            "Hof",
        ],
    ),
    (
        "BB",
        10,
        25,
        1.4,
        &[
            "Berlin",
            "Potsdam",
            "Cottbus",
            "Frankfurt (Oder)",
            "Brandenburg an der Havel",
            "Eberswalde",
            "Oranienburg",
            "Neuruppin",
        ],
    ),
    (
        "SAT",
        10,
        22,
        0.9,
        &[
            "Magdeburg",
            "Halle (Saale)",
            "Erfurt",
            "Jena",
            "Gera",
            "Dessau-Roßlau",
            "Weimar",
            "Gotha",
            "Stendal",
            "Nordhausen",
        ],
    ),
    (
        "SAC",
        8,
        13,
        0.8,
        &[
            "Leipzig", "Dresden", "Chemnitz", "Zwickau", "Plauen", "Görlitz", "Bautzen", "Freiberg",
        ],
    ),
];

/// Relative size of the k-th largest gE of an RD.
fn zipf(k: usize) -> f64 {
    1.0 / ((k + 1) as f64).powf(1.35)
}

/// The codes of the 10 RDs.
#[must_use]
pub fn rd_codes() -> Vec<&'static str> {
    RDS.iter().map(|r| r.0).collect()
}

/// All gEs, in a fixed order, with skewed weights.
#[must_use]
pub fn jobcenters() -> Vec<Ge> {
    let mut out = Vec::new();
    let mut agency = 0usize;
    for &(rd, n_agencies, n_ges, size, towns) in RDS {
        let agencies: Vec<String> = (0..n_agencies)
            .map(|i| format!("{:03}", 101 + (agency + i) * 5))
            .collect();
        agency += n_agencies;
        let mut per_agency = vec![0u32; n_agencies];
        let norm: f64 = (0..n_ges).map(zipf).sum();
        for k in 0..n_ges {
            let a = k % n_agencies;
            per_agency[a] += 1;
            let town = towns[k % towns.len()];
            let name = match k / towns.len() {
                0 => format!("Jobcenter {town}"),
                1 => format!("Jobcenter Landkreis {town}"),
                2 => format!("Jobcenter {town}-Land"),
                3 => format!("Jobcenter Kreis {town} Nord"),
                n => format!("Jobcenter Region {town} {n}"),
            };
            // Zipf-like within the RD: the first gEs are big cities, the tail is tiny.
            let weight = size * zipf(k) / norm;
            out.push(Ge {
                rd,
                agentur_nr: agencies[a].clone(),
                ge_nr: format!("{}{:02}", agencies[a], per_agency[a]),
                name,
                weight,
                towns,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geography_is_consistent() {
        let ges = jobcenters();
        assert_eq!(ges.len(), 400);
        let mut numbers: Vec<_> = ges.iter().map(|g| g.ge_nr.clone()).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), 400, "gE numbers are unique");
        assert!(
            ges.iter()
                .all(|g| g.ge_nr.len() == 5 && g.agentur_nr.len() == 3)
        );
        assert!(ges.iter().all(|g| g.ge_nr.starts_with(&g.agentur_nr)));
        assert_eq!(rd_codes().len(), 10);
    }
}
