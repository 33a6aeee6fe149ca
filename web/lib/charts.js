// charts.js — Chart.js for the pages, from Debian's libjs-chart.js, which the
// gateway serves at /javascript/chart.js/ ([http] javascript_root). Without
// it, loadChart() resolves with null and the pages show numbers only.
let loading = null;

export function loadChart() {
	if (!loading)
		loading = import('/javascript/chart.js/chart.esm.js').then(
			(m) => {
				m.Chart.register(
					m.LineController,
					m.LineElement,
					m.PointElement,
					m.LinearScale,
					m.CategoryScale,
					m.Filler,
					m.Tooltip,
					m.Legend
				);
				return m.Chart;
			},
			(e) => {
				console.warn('charts unavailable (install libjs-chart.js):', e.message);
				return null;
			}
		);
	return loading;
}
