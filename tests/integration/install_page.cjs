// tests/integration/install_page.cjs URL - used by install.sh: opens the
// `lmz init` skeleton's page (templates/app/web/index.html) in headless
// Chromium (playwright-core from $PLAYWRIGHT, the browser at $CHROMIUM),
// waits until it shows the answers of both actors, clicks "increment",
// waits for the total to change, and prints one JSON line
// {before, after, hello, errors}. Every wait is bounded (20 s); the browser
// is closed in every case. Exit 1 with the error text if the browser fails.
const { chromium } = require(process.env.PLAYWRIGHT);

const WAIT = 20000;

async function run(url) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT);
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    const text = (id) => page.locator('#' + id).textContent();
    const answered = () => document.getElementById('hello').textContent !== '' &&
      /^[0-9]+$/.test(document.getElementById('total').textContent);
    await page.waitForFunction(answered).catch(() => {}); // reported below
    const before = await text('total');
    await page.click('#inc');
    await page.waitForFunction((b) => document.getElementById('total').textContent !== b, before)
      .catch(() => {});
    return { before, after: await text('total'), hello: await text('hello'), errors };
  } finally {
    await browser.close();
  }
}

run(process.argv[2]).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => { console.log(String(e)); process.exit(1); });
