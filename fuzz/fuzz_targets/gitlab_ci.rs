//! `.gitlab-ci.yml` parsing and normalisation: any text either fails with an error or yields
//! jobs whose `secrets:` normalise (or fail) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_core::gitlab_ci::CiConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = CiConfig::from_yaml(text) else {
        return;
    };
    let setting = |name: &str| match name {
        "VAULT_SERVER_URL" => Some("https://vault.example.com".to_owned()),
        "AWS_REGION" => Some("us-east-1".to_owned()),
        _ => None,
    };
    let mut names: Vec<String> = config.job_names().into_iter().map(str::to_owned).collect();
    names.extend([
        "default".to_owned(),
        ".hidden".to_owned(),
        "missing".to_owned(),
    ]);
    for name in names {
        if let Ok(job) = config.job(&name) {
            let _ = job.variables();
            let _ = job.id_tokens();
            if let Ok(secrets) = job.secrets_payload(&setting) {
                for (_, secret) in secrets {
                    let _ = secret.reference();
                    let _ = secret.providers();
                }
            }
        }
    }
});
