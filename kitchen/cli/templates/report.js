document.getElementById('toggle-superseded').addEventListener('change', function (e) {
  document.body.classList.toggle('hide-superseded', !e.target.checked);
});
document.body.dataset.charts = document.querySelectorAll('svg.chart').length;
document.body.dataset.attempts = document.querySelectorAll('svg.timeline .attempt').length;
