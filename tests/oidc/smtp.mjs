// A real SMTP server for the mail tests (npm smtp-server; messages decoded by mailparser).
// Prints "port=<n>" once listening on 127.0.0.1:0 (or PORT), then one JSON line per message
// accepted: {"to": [...], "subject", "text", "html", "headers": {...}}.
// Env: TLS_CERT/TLS_KEY (PEM files: offer STARTTLS with them), REJECT=550|451 (refuse every
// message with that code), PORT (listen there instead of a free port).
import fs from 'node:fs';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

const tls = process.env.TLS_CERT
  ? { key: fs.readFileSync(process.env.TLS_KEY), cert: fs.readFileSync(process.env.TLS_CERT) }
  : {};
const reject = process.env.REJECT ? Number(process.env.REJECT) : 0;
const server = new SMTPServer({
  ...tls,
  disabledCommands: process.env.TLS_CERT ? ['AUTH'] : ['AUTH', 'STARTTLS'],
  logger: false,
  onData(stream, session, callback) {
    simpleParser(stream).then(mail => {
      if (reject) {
        const e = new Error(reject >= 500 ? 'mailbox unavailable' : 'try again later');
        e.responseCode = reject;
        return callback(e);
      }
      const headers = {};
      for (const [k, v] of mail.headers) headers[k] = typeof v === 'string' ? v : JSON.stringify(v);
      process.stdout.write(JSON.stringify({
        to: session.envelope.rcptTo.map(r => r.address),
        secure: session.secure,
        subject: mail.subject, text: mail.text, html: mail.html, headers,
      }) + '\n');
      callback();
    }, callback);
  },
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`port=${server.server.address().port}\n`);
});
