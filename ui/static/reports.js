// Reports: days are cut at midnight where the viewer is. A report asked for without a time zone
// is asked again with the browser's; the form carries it from then on.

const zone = document.getElementById("r-zone");
const here = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone && here) {
  const params = new URLSearchParams(location.search);
  if (!params.get("zone")) {
    params.set("zone", here);
    location.replace(`${location.pathname}?${params}`);
  } else if (!zone.value) {
    zone.value = here;
  }
}
